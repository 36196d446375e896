"""The read-only vocabulary: an allow-list that fails closed. Everything it lets through must be unable to
write; everything else (unknown commands, writes, syntax it does not follow) counts as a change."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsguard.plan import render
from opsguard.playbooks.common import read_only_psql, shell_word
from opsguard.readonly import PM2_DAEMON_RUNNING, PM2_LISTING, READ_ONLY_PGOPTIONS, classify, read_only_problem

READ_ONLY_PGOPTIONS_WORD = "'" + READ_ONLY_PGOPTIONS + "'"

READ_ONLY = [
    "cat /etc/hostname",
    "df -P / /var",
    "free -b",
    "echo hi >/dev/null 2>&1",
    "stat -c '%d %n' /home",
    "for tool in curl tar; do command -v \"$tool\" >/dev/null 2>&1 || { echo \"missing: $tool\"; exit 1; }; done",
    "if [ -e /var/run/reboot-required ]; then echo yes; else echo no; fi",
    "case $x in a) echo a;; b|c) echo b;; esac",
    "x=$(cat /proc/uptime); echo \"$x\"",
    "cat <<'EOF'\n$(rm -rf /)\nEOF\n",
    "grep -E '^(PORT|DB_PORT)=' /home/deployzdg/zpro.io/backend/.env",
    # What the third review's fixes must still accept: grep -r over a literal tree outside /proc, /sys, /dev,
    # /run; journalctl -n with a number; find's -xdev; sudo as opsguard sends it.
    "grep -rs 'APT::Periodic::' /etc/apt/apt.conf.d",
    "journalctl -n 50 --no-pager -u nginx",
    "find /srv -xdev -type f -name '*.log'",
    "iptables -t filter -L -n",
    "sudo -n -H -u deployzdg -- bash --login -c 'cd 2>/dev/null\ncat /etc/hostname'",
    "awk '$2 ~ \"^(apt|dpkg)$\" { printf \"%s \", $1 }'",
    "sed 's/^Inst /WARNING: /'",
    "find /var/backups -type f -printf '%T@ %s %p\\n' | sort -n | tail -n 1",
    "apt-get -o DPkg::Lock::Timeout=600 -s upgrade",
    "systemctl is-system-running; systemctl --failed --plain --no-legend",
    "docker ps --format '{{.Names}}'",
    "docker compose config -q",
    "docker compose exec -T -- \"$service\" pg_isready",
    f"docker exec -e PGOPTIONS={READ_ONLY_PGOPTIONS_WORD} postgresql psql -X -U zpro -d zpro -tAc 'select 1'",
    "docker exec -i postgresql pg_restore -l < /var/backups/opsguard/x/database.dump",
    "docker exec redis-zpro redis-cli ping",
    "curl -sS -o /dev/null --max-time 5 -w '%{http_code}\\n' http://localhost:3000/",
    f"if {PM2_DAEMON_RUNNING}; then pm2 jlist; else echo pm2_not_running; fi",
    "sudo -n -H -u deployzdg -- bash --login -c 'cat /home/deployzdg/.pm2/logs/zpro-backend-error.log'",
    "needrestart -r l -b",
    "kill -0 1",
    "pgrep -g 1 >/dev/null",
    "journalctl --list-boots",
    "crontab -l -u deployzdg",
    "openssl x509 -noout -enddate -in /etc/ssl/cert.pem",
    '[ "$x" = yes ] && [ ! -e "$f" ] && [ -n "$(cat /proc/uptime)" ] && test "$a" -lt "$b"',
    '[ ! "$x" = "$y" ] && [ \\( "$x" \\) ] && [ "$x" ]',
    "printf '%s\\n' \"$x\" $y; printf -- '-%s' x",
    "sleep 1 & wait",
    'echo "${POSTGRES_USER:-postgres}" ${HOME}',
    "timeout 10 openssl s_client -connect example.com:443 -servername example.com </dev/null 2>/dev/null | openssl x509 -noout -enddate",
    "cat /proc/uptime 2>/dev/null >&2 </dev/null; df -P 1>&2 2>&1",
    f'docker exec -e PGOPTIONS={READ_ONLY_PGOPTIONS_WORD} -e PGDATABASE="$db" postgresql psql -X -U "$user" -tAc \'select 1\'',
]

# Each found by a review as accepted while it writes or runs a command (verified in bash or by the tool's docs).
REVIEW_BYPASSES = {
 "heredoc_backslash_quote": 'cat <<EOF\n\\" $(touch /tmp/x/pwn_heredoc)\nEOF\n',
 "param_default_escaped_quote": 'echo ${x:-\\"$(touch /tmp/x/pwn_param)}',
 "arith_escaped_quote": 'echo $((\\"$(touch /tmp/x/pwn_arith)))',
 "comment_in_cmdsubst": "echo $(echo a # )  '\ntouch /tmp/x/pwn_comment # '\n)",
 "arith_var_recursive": "x='a[$(touch /tmp/x/pwn_arithvar)]'; echo $((x))",
 "arith_cmd": "echo='a[$(touch /tmp/x/pwn_arithcmd)]'; ((echo))",
 "dbl_bracket_eq": "[[ 'a[$(touch /tmp/x/pwn_dblbr)]' -eq 0 ]]",
 "test_v": "test -v 'a[$(touch /tmp/x/pwn_testv)]'",
 "printf_v": "printf -v 'a[$(touch /tmp/x/pwn_printfv)]' x",
 "read_array": "read 'a[$(touch /tmp/x/pwn_read)]' </dev/null",
 "ps4_xtrace": "PS4='$(touch /tmp/x/pwn_ps4)'; set -x; true",
 "dev_tcp_fd1_input": "echo FLUSHALL 1</dev/tcp/127.0.0.1/16379",
 "env_S": "env -S 'touch /tmp/x/pwn_envS'",
 "env_split_string": "env --split-string='touch /tmp/x/pwn_envSS'",
 "dollar_dquote_find": 'find /tmp/x/victim1 $"-delete"',
 "ansi_c_find": "find /tmp/x/victim2 $'-delete'",
 "brace_find": "find /tmp/x/victim3 -{delete,print}",
 "computed_find": "find /tmp/x/victim4 ${X:--delete}",
 "sort_abbrev": "sort --ou=/tmp/x/pwn_sort /etc/hostname",
 "sort_computed": "sort $'-o/tmp/x/pwn_sort2' /etc/hostname",
 "tee_dashdash": "echo x | tee -- -pwn_tee",
 "uniq_dashdash": "uniq /etc/hostname -- -pwn_uniq",
 "awk_semicolon_in_string": "awk 'BEGIN{print \";\" > \"/tmp/x/pwn_awk\"}'",
 "awk_coprocess": "gawk 'BEGIN{\"touch /tmp/x/pwn_gawk\" |& getline}'",
 "tar_I": "tar -t -I 'sh -c \"touch /tmp/x/pwn_tar; cat\"' -f /tmp/x/a.tar",
 "tar_checkpoint": "tar -tf /tmp/x/a.tar --checkpoint=1 --checkpoint-action=exec='touch /tmp/x/pwn_tarcp'",
 "tar_env": "TAR_OPTIONS='--checkpoint=1 --checkpoint-action=exec=touch\\ /tmp/x/pwn_tarenv' tar -tf /tmp/x/a.tar",
 "date_s_attached": "date -s@0",
 "date_s_abbrev": "date --s=@0",
 "kill_0_then_s9": "kill -0 -s 9 $$",
 "sysctl_f": "sysctl -f",
 "sysctl_ep": "sysctl -ep",
 "journalctl_abbrev": "journalctl --rotat",
 "journalctl_cursor_file": "journalctl -n1 --cursor-file=/tmp/x/pwn_cursor",
 "systemctl_message": "systemctl --message status stop nginx",
 "systemctl_P": "systemctl -P status reboot",
 "docker_tlscert": "docker --tlscert ps rm -f web",
 "docker_exec_detach_keys": "docker exec --detach-keys ctrl-x web rm -rf /data",
 "redis_i": "redis-cli -i ping flushall",
 "psql_two_c": "PGOPTIONS='-c default_transaction_read_only=on' psql -c 'set default_transaction_read_only=off' -c 'drop table users'",
 "psql_begin_rw": "PGOPTIONS='-c default_transaction_read_only=on' psql -c 'begin read write; drop table users; commit'",
 "psql_copy_program": "PGOPTIONS='-c default_transaction_read_only=on' psql -c \"copy (select 1) to program 'touch /tmp/pwn'\"",
 "psql_pgoptions_override": "PGOPTIONS='-c default_transaction_read_only=on -c default_transaction_read_only=off' psql -c 'drop table users'",
 "psql_long_abbrev_meta": "PGOPTIONS='-c default_transaction_read_only=on' psql --comm='\\! touch /tmp/pwn'",
 "apt_get_sim_off": "apt-get -s -o APT::Get::Simulate=false install cowsay",
 "needrestart_ra": "needrestart -r l -r a",
 "openssl_keylog": "openssl s_client -connect 127.0.0.1:443 -keylogfile /tmp/x/pwn_keylog",
 "curl_write_out_output": "curl -s -w '%output{/tmp/x/pwn_curlw}hello' -o /dev/null http://127.0.0.1:1/",
 "curl_hsts": "curl --hsts /tmp/x/pwn_hsts https://example.invalid/",
 "curl_gopher_redis": "curl 'gopher://127.0.0.1:6379/_FLUSHALL%0D%0A'",
 "curl_computed_o": "curl $'-o' /tmp/x/pwn_curl http://127.0.0.1:1/",
 "pm2_name": "if " + "pm2_pid=$(cat \"$HOME/.pm2/pm2.pid\" 2>/dev/null) && [ -n \"$pm2_pid\" ] && [ -d \"/proc/$pm2_pid\" ]" + "; then pm2 --name ls delete all; fi",
 "pm2_string_only": "echo 'pm2_pid=$(cat \"$HOME/.pm2/pm2.pid\" 2>/dev/null) && [ -n \"$pm2_pid\" ] && [ -d \"/proc/$pm2_pid\" ]'; pm2 jlist",
 "ss_kill": "ss -K dst 10.0.0.1",
 "ionice_p": "ionice -c 3 -p 1",
 "pg_restore_f_attached": "pg_restore -l -f/tmp/x/pwn_pgr dump.backup",
 "basename_path": "/tmp/x/evil/cat /etc/hostname",
 "export_bashenv": "export BASH_ENV=/tmp/x/evil.sh; bash -c true",
 "ld_preload": "LD_PRELOAD=/tmp/x/x.so cat /etc/hostname",
 "certbot": "certbot certificates",
}

# A second review: each text below was accepted and changed something when bash ran it (texts verbatim).
_PSQL_LOCAL = "PGOPTIONS='-c default_transaction_read_only=on' psql -X -h /tmp/rv/pg -p 55432 -U postgres "
_PM2_LISTING_BEFORE = 'if pm2_pid=$(cat "$HOME/.pm2/pm2.pid" 2>/dev/null) && [ -n "$pm2_pid" ] && [ -d "/proc/$pm2_pid" ]; then pm2 jlist; else echo pm2_not_running; fi'
SECOND_REVIEW_BYPASSES = {
 'c1a_dq_dollar_squote': 'echo "$\'" ; touch /tmp/rv/w/pwn2 ; echo "\'"',
 'c1b_dq_dollar_dquote': 'echo "$" ; touch /tmp/rv/w/pwn3 ; echo " "',
 'c1c_ansi_c_escaped_quote': "echo $'\\' ' ; touch /tmp/rv/w/pwn1 ; # '",
 'c1d_dq_line_continuation': 'echo "$\\\n(touch /tmp/rv/w/pwn_dqcont)"',
 'c1e_heredoc_continued_delimiter': 'cat <<\\\nE\n$(touch /tmp/rv/w/pwn_hdcont)\nE\n',
 'c1f_heredoc_ansi_delimiter': "cat <<$'E'\nE\ntouch /tmp/rv/w/pwn_hdansi\n$'E'\n",
 'c1g_backquote_unescaping': 'echo `echo "\\$(touch /tmp/rv/w/pwn_bt)"`',
 'c1h_quoted_for': '\\for x in a || touch /tmp/rv/w/pwn4;',
 'c1h_for_after_assignment': 'x=1 for y in a || touch /tmp/rv/w/pwn6\n',
 'c1i_quoted_case': "'case' y in\ntouch /tmp/rv/w/pwn5\nesac",
 'c1i_case_after_assignment': 'x=1 case y in\ntouch /tmp/rv/w/pwn5\nesac',
 'c1i_case_after_redirect': '>/dev/null case y in\ntouch /tmp/rv/w/pwn5\nesac',
 'c1i_case_quoted_esac': 'x=1 case y in\ntouch /tmp/rv/w/pwn_case2\n\\esac',
 'c1_nested_sudo_sh': 'sudo -n -u www-data sh -c \'echo "$\'"\'"\'" ; touch /tmp/rv/w/pwn_nested ; echo "\'"\'"\'"\'',
 'c1_nested_docker_exec_sh': 'docker exec web sh -c \'echo "$" ; rm -rf /data ; echo " "\'',
 'c1_nested_timeout_sh': "timeout 5 sh -c '\\for x in a || touch /tmp/rv/w/pwn_t;'",
 'c2_tilde_oldpwd_find': ': ${OLDPWD:=-delete}; find /victim ~-',
 'c2_tilde_oldpwd_sed': ': ${OLDPWD:=-i}; sed s/a/b/ ~- f',
 'c2_tilde_oldpwd_sort': ': ${OLDPWD:=--output=/x}; sort ~- /etc/hostname',
 'c2_tilde_oldpwd_apt_get': ': ${OLDPWD:=-oAPT::Get::Simulate=false}; apt-get -s install ~- cowsay',
 'c2_tilde_oldpwd_fuser': ': ${OLDPWD:=-k}; fuser -v ~- /var/lib/dpkg/lock',
 'c2_tilde_oldpwd_iptables': ': ${OLDPWD:=-Z}; iptables -L ~-',
 'c2_tilde_oldpwd_compose': ': ${OLDPWD:=-o/tmp/x.yml}; docker compose config ~-',
 'c2_tilde_oldpwd_printf': ": ${OLDPWD:=-v}; printf ~- 'a[$(touch /tmp/x)]' y",
 'c3_sed_address_e': "echo hi | sed -n '/\\|\\/,/e touch pwned #/p'",
 'c3_sed_address_w': "sed -n '/\\|\\/,/w victim/p' /etc/hostname",
 'c4_awk_regex_with_quote': 'awk \'BEGIN { x = /"/; print "touch x" | "sh" }\'',
 'c4_awk_continued_pipe': 'awk \'BEGIN{print "touch x" \\\n| "sh"}\'',
 'c4_awk_comma_newline': 'awk \'BEGIN{print 1,\n2 > "/tmp/x"}\'',
 'c4_gawk_load_rwarray': 'gawk \'@load "rwarray"; BEGIN { a[1] = 1; writea("/tmp/x/pwn", a) }\'',
 'c4_gawk_include_inplace': 'gawk \'@include "inplace"; { print "x" }\' /etc/hosts',
 'c4_gawk_load_fork': 'gawk \'@load "fork"; BEGIN { fork() }\'',
 'c5_docker_exec_split_container': "c='-d web rm -rf /data'; docker exec $c cat /etc/hostname",
 'c5_compose_exec_split_service': "s='-d web rm -rf /data'; docker compose exec $s cat /etc/hostname",
 'c6_printf_computed_v': 'x=-v; printf "$x" \'a[$(touch x)]\' y',
 'c6_test_computed_v': 'x=-v; test "$x" \'a[$(touch x)]\'',
 'c6_wait_p': "sleep 0 & wait -n -p 'a[$(touch x)]'",
 'c7_dev_tcp_computed_dup0': 'h=127.0.0.1; printf "FLUSHALL\\r\\n" < /dev/tcp/$h/16379 >&0',
 'c7_fd_variable': "h=127.0.0.1; printf 'x' {s}</dev/tcp/$h/16379 >&10",
 'h1_conninfo_options': _PSQL_LOCAL + "-d 'dbname=postgres options=-cdefault_transaction_read_only=off' -tAc 'select nextval/**/(1::regclass) from users limit 1'",
 'h1_conninfo_user_function': _PSQL_LOCAL + "-d 'dbname=postgres options=-cdefault_transaction_read_only=off' -tAc 'select cleanup/**/()'",
 'h1_uri_options': _PSQL_LOCAL + "-d 'postgresql:///postgres?options=-cdefault_transaction_read_only%3Doff' -tAc 'select id from users for update'",
 'h1_computed_dbname': "db='dbname=postgres options=-cdefault_transaction_read_only=off'; " + _PSQL_LOCAL + '-d "$db" -tAc \'select id from users for update\'',
 'h1_comment_stat_reset': _PSQL_LOCAL + "-tAc 'select pg_stat_reset/**/()'",
 'h1_uescape_terminate': _PSQL_LOCAL + '-tAc "select U&\\"!0070g_terminate_backend\\" UESCAPE \'!\' (pid) from pg_stat_activity where application_name = \'victim\'"',
 'h1_uescape_reload': _PSQL_LOCAL + '-tAc "select U&\\"!0070g_reload_conf\\" UESCAPE \'!\' ()"',
 'h1_uescape_set_config': _PSQL_LOCAL + '-tAc "select U&\\"!0073et_config\\" UESCAPE \'!\' (\'default_transaction_read_only\',\'off\',false)"',
 'h1_comment_restore_point': _PSQL_LOCAL + '-tAc "select pg_create_restore_point/**/(\'x\')"',
 'h1_comment_notify': _PSQL_LOCAL + '-tAc "select pg_notify/**/(\'c\', \'x\')"',
 'h1_comment_advisory_lock': _PSQL_LOCAL + "-tAc 'select pg_advisory_lock/**/(1)'",
 'h1_comment_current_xact_id': _PSQL_LOCAL + "-tAc 'select pg_current_xact_id/**/()'",
 'h1_comment_sleep': _PSQL_LOCAL + "-tAc 'select pg_sleep/**/(1)'",
 'h1_sudo_drops_pgoptions': "PGOPTIONS='-c default_transaction_read_only=on' sudo -u postgres psql -X -tAc 'select 1'",
 'h1_sudo_i_drops_pgoptions': "PGOPTIONS='-c default_transaction_read_only=on' sudo -n -iu postgres psql -X -tAc 'select 1'",
 'h1_env_sudo_drops_pgoptions': "env PGOPTIONS='-c default_transaction_read_only=on' sudo -u postgres psql -tAc 'select 1'",
 'h1_docker_exec_drops_pgoptions': "PGOPTIONS='-c default_transaction_read_only=on' docker exec db psql -tAc 'select 1'",
 'h2_pm2_listing_as_argument': 'pm2_pid=1; if : ' + _PM2_LISTING_BEFORE + '',
 'h3_curl_header_crlf': "curl -s -H 'X: a\r\nContent-Length: 0\r\n\r\nDELETE /api/x HTTP/1.1\r\nHost: x' http://127.0.0.1:1/",
 'h3_curl_write_out_stdin': "printf '%%output{/tmp/rv/w/pwn_curl}x' | curl -s -o /dev/null -w @- http://127.0.0.1:1/",
 'h3_curl_write_out_file': 'curl -s -o /dev/null -w @/tmp/x/fmt http://127.0.0.1:1/',
 'h4_openssl_s_client_piped': "(sleep 1; printf 'POST /admin/drop HTTP/1.0\\r\\n\\r\\n'; sleep 1) | openssl s_client -connect 127.0.0.1:18444 -brief",
 'm1_watchdog': 'head -c0 /dev/watchdog',
 'm1_kmsg': 'head -c 4096 /proc/kmsg',
 'm1_initctl_fifo': 'cat /run/initctl',
 'l1_http_proxy': 'http_proxy=http://127.0.0.1:6379 curl -s http://x/',
 'l1_https_proxy': 'https_proxy=http://127.0.0.1:6379 curl -s https://x/',
 'l1_all_proxy': 'all_proxy=socks5://127.0.0.1:6379 curl -s http://x/',
}

# Whole categories the parser refuses rather than models (each is where bash and a simple reading can differ).
REFUSED_CATEGORIES = [
    "echo `echo hi`",  # backquotes
    "echo \"a $(echo `echo hi`)\"",
    "echo $'a'",  # $'...' and $"..." everywhere, inside double quotes too
    'echo $"a"',
    "echo \"$'\"",
    "echo \"$\"",
    "echo a \\\nb",  # backslash-newline outside single quotes
    'echo "a\\\nb"',
    "cat <<\\E\nbody\nE\n",  # here-document delimiters: [A-Za-z0-9_]+, bare or wholly quoted
    "cat <<E'F'\nbody\nEF\n",
    "cat <<'E-F'\nbody\nE-F\n",
    "echo $(cat <<'E'\n)\nE\n)",  # a here-document inside $(...)
    "echo a\rb",  # control characters other than tab and newline
    "echo a\x1b[2J",
    "sed s/a/b/ ~",  # an unquoted tilde is computed
    "find /victim ~-",
    "sort ~+ /etc/hostname",
    "echo ${x=1}",  # ${...} that assigns
    "echo ${x:=1}",
    "echo ${OLDPWD:=-delete}",
    "\\if true; then echo; fi",  # a reserved word only unquoted and first in its command
    "'for' x in a; do echo; done",
    "x=1 if true; then echo; fi",
    ">/dev/null for x in a; do echo; done",
    "case x in a) echo;; \\esac",
    "for 'x' in a; do echo; done",
    "for x 'in' a; do echo; done",
    "echo {fd}</etc/hostname",  # {name}< opens and names a descriptor
    "echo a;; cat /etc/hostname)",  # ;; and esac only inside a case
    "echo a; esac",
]

CHANGES = [
    "echo \"$(( $(date +%s) - 5 ))\"",  # arithmetic evaluates variables as expressions: refused outright
    "rm -rf /tmp/x",
    "echo hi > /tmp/x",
    "echo hi >> /tmp/x",
    "echo hi >| /tmp/x",
    "echo hi &> /tmp/x",
    "cat /etc/passwd 1<>/tmp/x",
    "x=$(rm -rf /)",
    "echo `touch /tmp/x`",
    "echo \"$(touch /tmp/x)\"",
    "echo \"${x:-$(touch /tmp/x)}\"",
    "echo $(( $(touch /tmp/x) ))",
    "cat <<EOF\n$(touch /tmp/x)\nEOF\n",
    "$cmd /tmp/x",
    "f() { rm x; }; f",
    "eval 'rm x'",
    "nginx -t",
    "pm2 jlist",
    "npx --no-install sequelize db:migrate:status",
    "docker exec postgresql psql -c 'select 1'",
    f"docker exec -e PGOPTIONS={READ_ONLY_PGOPTIONS_WORD} postgresql psql -c '\\! rm x'",
    f"docker exec -e PGOPTIONS={READ_ONLY_PGOPTIONS_WORD} postgresql psql -f /tmp/x.sql",
    "docker compose up -d",
    "lsof -Db",
    "lsof -nDu",
    "docker compose -f oci://registry.example/evil:latest config",
    "docker compose -f https://github.com/x/y.git config",
    "echo | openssl s_client -connect 127.0.0.1:443",  # s_client sends its input: only </dev/null
    "openssl s_client -connect 127.0.0.1:443 <<'E'\nPOST / HTTP/1.0\nE\n",
    "openssl s_client -connect 127.0.0.1:443 </dev/null <&3",
    "curl -s -H 'X: a\nDELETE /x HTTP/1.1' http://127.0.0.1/",  # a line break in a header
    "curl -s -H @/tmp/headers http://127.0.0.1/",
    f"docker exec -e PGOPTIONS={READ_ONLY_PGOPTIONS_WORD} -e 'PGDATABASE=dbname=x options=-cx=y' db psql -tAc 'select 1'",
    f"docker exec -e PGOPTIONS={READ_ONLY_PGOPTIONS_WORD} db psql --dbname=postgres://db/x -tAc 'select 1'",
    f"docker exec -e PGOPTIONS={READ_ONLY_PGOPTIONS_WORD} db psql -d \"$db\" -tAc 'select 1'",
    f"docker exec -e PGOPTIONS={READ_ONLY_PGOPTIONS_WORD} db psql -tAc 'select 1 -- x'",
    f"docker exec -e PGOPTIONS={READ_ONLY_PGOPTIONS_WORD} db psql -tAc 'select \"a\"\"b\" from t'",
    'cat < "$file"',  # a redirection target the shell computes (bash connects for /dev/tcp/...)
    "echo x >&0",  # descriptor duplications other than 2>&1 and >&2
    "echo x 3>&1",
    "cat <&3",
    "cat </dev/tcp/127.0.0.1/80",
    "head -c0 < /dev/watchdog",  # devices (but /dev/null) and special files, however the path is written
    "cat /dev/stdin",
    "cat //dev/watchdog",
    "cat /tmp/../dev/watchdog",
    "cd /dev && head -c0 watchdog",
    "cd / && head -c0 dev/watchdog",
    "cat ../../dev/watchdog",
    "cat /proc/1/fd/3",
    "cat /sys/kernel/tracing/trace_pipe",
    "cd /proc && cat kmsg",
    'x=/dev/watchdog; head -c0 "$x"',
    'for f in /dev/watchdog; do head -c0 "$f"; done',
    "grep -f/dev/watchdog x",
    "cat '/dev/disk/by-label/My Disk'",
    "cd /d?v && head -c0 watchdog",
    'cd "$dir" && head -c0 watchdog',
    'x=-v; test "$x" "$y"',  # test: a computed word where bash could read -v (its operand's subscript runs)
    'x=-v; [ ! "$x" "$y" ]',
    'x=-v; [ "$x" "$y" -a 1 ]',
    "[ -n $x ]",
    'printf "$format" x',
    'printf -- "$format" x',
    "sleep 1 & wait 1",
    'docker compose exec -T "$service" pg_isready',  # a computed service only after --
    'docker exec "$c" cat /etc/hostname',
    "docker exec -- $c cat /etc/hostname",  # unquoted: may split into options and a container
    "docker compose config -o /tmp/x.yml",
    "docker exec postgresql sh -c 'rm -rf /var/lib/postgresql'",
    "apt-get update",
    "apt-get -y upgrade",
    "systemctl restart nginx",
    "sed -i 's/a/b/' /etc/x",
    "sed 's/a/b/w /tmp/x'",
    "awk '{print > \"/tmp/x\"}'",
    "awk 'BEGIN{system(\"rm x\")}'",
    "find / -delete",
    "find / -exec rm {} ;",
    "sort -o /tmp/x /etc/passwd",
    "tee /tmp/x",
    "curl -o /tmp/x http://host/",
    "curl -X POST http://host/",
    "curl -d a=b http://host/",
    "date -s 2020-01-01",
    "hostname evil",
    "kill -TERM 1",
    "fuser -k /var/lib/dpkg/lock",
    "sudo -n -iu deployzdg -- sh -c 'pm2 stop all'",
    "env rm -rf /tmp/x",
    "timeout 5 rm -rf /tmp/x",
    "command rm -rf /tmp/x",
    "xargs rm < /tmp/list",
    "mkdir /tmp/x",
    "echo 'unterminated",
    "crontab -r",
    "sysctl -w vm.swappiness=1",
    "ip route add default via 10.0.0.1",
    "tar -xf /tmp/x.tar",
    "unzip /tmp/x.zip",
]


@pytest.mark.parametrize("text", READ_ONLY)
def test_readonly_accepts_read_only_probe(text: str) -> None:
    assert read_only_problem(text) is None


@pytest.mark.parametrize("text", CHANGES)
def test_readonly_refuses_text_that_may_change_the_host(text: str) -> None:
    assert read_only_problem(text) is not None


@pytest.mark.parametrize("name", sorted(REVIEW_BYPASSES))
def test_readonly_refuses_each_bypass_a_review_found(name: str) -> None:
    assert read_only_problem(REVIEW_BYPASSES[name]) is not None, REVIEW_BYPASSES[name]


@pytest.mark.parametrize("name", sorted(SECOND_REVIEW_BYPASSES))
def test_readonly_refuses_each_bypass_the_second_review_found(name: str) -> None:
    assert read_only_problem(SECOND_REVIEW_BYPASSES[name]) is not None, SECOND_REVIEW_BYPASSES[name]


# The third review's accepted texts (each proven harmful in bash, or by the tool's documentation): refused now.
THIRD_REVIEW_BYPASSES = {
    "sudo_i_dollar_one_in_quotes_sort": "sudo -n -iu deployzdg sort '$1-o/tmp/pwn_sudoi_sort' /etc/hostname",
    "sudo_i_dollar_one_in_quotes_find": "sudo -n -i find /srv/victim '$1-delete'",
    "sudo_i_sudo_command_fuser": "sudo -n -iu deployzdg fuser -v '$SUDO_COMMAND' / 'x -k'",
    "sudo_i_sudo_command_curl": "sudo -n -iu deployzdg curl -s -o /dev/null -H '$SUDO_COMMAND' http://127.0.0.1:18081/",
    "sudo_i_bash_c_dollar_in_quotes": "sudo -n -iu deployzdg -- bash -c 'echo \"\\$1\" \"; touch /tmp/pwn_sudoi_exec; #\"'",
    "array_subscript_from_variable": "v='a[$(touch /tmp/pwn_arr1)]'; x=(echo [v]=1)",
    "array_subscript_literal": "x=(: ['a[$(touch /tmp/pwn_arr2)]']=1)",
    "journalctl_n_vacuum": "journalctl -n --vacuum-size=1",
    "journalctl_n_rotate": "journalctl -n --rotate",
    "journalctl_n_update_catalog": "journalctl -n --update-catalog",
    "journalctl_lines_setup_keys": "journalctl --lines --setup-keys",
    "journalctl_n_cursor_file": "journalctl -n --cursor-file=/tmp/x",
    "grep_attached_relative_dev": "cd / && grep -fdev/watchdog x",
    "grep_attached_relative_kmsg": "cd /proc && grep -fkmsg x",
    "du_attached_relative_dev": "cd / && du -Xdev/watchdog /srv",
    "last_attached_relative_dev": "cd / && last -fdev/watchdog",
    "date_tz_in_a_spaced_word": "date -d 'TZ=\"/dev/watchdog\" now'",
    "awk_sets_its_own_input": "awk 'BEGIN{ARGV[1]=sprintf(\"%cdev%cwatchdog\",47,47);ARGC=2}{print}'",
    "grep_recursive_proc": "grep -r x /proc",
    "grep_recursive_devices_read": "grep -R -D read x /proc/1",
    "zcat_recursive_proc": "zcat -r /proc",
    "trace_pipe_raw": "cat /sys/kernel/tracing/per_cpu/cpu0/trace_pipe_raw",
    "awk_inet_socket": "awk '{print}' /inet/tcp/18080/0/0",
    "iptables_nat_loads_modules": "iptables -t nat -L",
}


@pytest.mark.parametrize("name", sorted(THIRD_REVIEW_BYPASSES))
def test_readonly_refuses_each_bypass_the_third_review_found(name: str) -> None:
    assert read_only_problem(THIRD_REVIEW_BYPASSES[name]) is not None, THIRD_REVIEW_BYPASSES[name]


@pytest.mark.parametrize("text", REFUSED_CATEGORIES)
def test_readonly_refuses_a_whole_category_where_bash_could_read_the_text_differently(text: str) -> None:
    assert read_only_problem(text) is not None, text


def test_readonly_refuses_read_only_psql_rendered_with_a_database_that_holds_connection_settings() -> None:
    # The database comes from the host's .env ({{postgres_db}}): rendered, it must never become connection
    # settings whose options= would turn default_transaction_read_only off.
    text = read_only_psql("postgresql", "{{postgres_user}}", "{{postgres_db}}", "select 1")
    assert read_only_problem(render(text, {"postgres_user": "zpro", "postgres_db": "zpro_db"})) is None
    for database in ("dbname=zpro options=-cdefault_transaction_read_only=off",
                     "postgresql:///zpro?options=-cdefault_transaction_read_only%3Doff"):
        rendered = render(text, {"postgres_user": "zpro", "postgres_db": shell_word(database)})
        assert read_only_problem(rendered) is not None, rendered


@pytest.mark.parametrize("before, after", [("", ""), ("x=1; ", ""), ("echo a && ", " | sort"), ("if true; then ", "; fi"),
                                           ("{ ", "; }"), ("sudo -n -H -u deployzdg -- bash --login -c '", "'")])
def test_readonly_accepts_the_pm2_listing_as_a_whole_command(before: str, after: str) -> None:
    assert read_only_problem(before + PM2_LISTING + after) is None


@pytest.mark.parametrize("before, after", [("pm2_pid=1; if : ", ""), ("x=1 ", ""), (">/dev/null ", ""), ("\\", ""),
                                           ("echo ", ""), ("x=", ""), ('echo "', '"'), ("echo $(", ")"), ("# ", ""),
                                           ("cat <<'E'\n", "\nE\n"), ("", " >/dev/null"), ("timeout 5 ", ""),
                                           ("bash -c 'x=1 ", "'")])
def test_readonly_refuses_the_pm2_listing_anywhere_but_as_a_whole_command(before: str, after: str) -> None:
    assert read_only_problem(before + PM2_LISTING + after) is not None, before + PM2_LISTING + after


@pytest.fixture
def pm2_daemon_stand_in() -> Iterator[int]:
    """A live process whose command line names PM2, as the real daemon's process title does."""
    process = subprocess.Popen(["PM2 v5.3.0: God Daemon (test)", "30"], executable=shutil.which("sleep"),
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    yield process.pid
    process.kill()
    process.wait()


def run_pm2_listing(home: Path, pid: int | str | None, *, socket_file: bool) -> tuple[str, bool]:
    """Run PM2_LISTING in bash with HOME=home (pm2.pid naming pid) and a pm2 that records its call; return
    (its output, whether pm2 ran)."""
    (home / ".pm2").mkdir(parents=True, exist_ok=True)
    if pid is not None:
        (home / ".pm2" / "pm2.pid").write_text(f"{pid}\n")
    if socket_file:
        os.mknod(home / ".pm2" / "rpc.sock", stat.S_IFSOCK | 0o600)  # a socket inode, as the daemon leaves
    bin_dir = home / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "pm2").write_text(f"#!/bin/sh\ntouch {home}/pm2-ran\necho '[]'\n")
    (bin_dir / "pm2").chmod(0o755)
    done = subprocess.run(["bash", "-c", PM2_LISTING], env={"HOME": str(home), "PATH": f"{bin_dir}:/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=20, check=False)
    return done.stdout.strip(), (home / "pm2-ran").exists()


def test_readonly_pm2_listing_asks_pm2_only_when_its_daemon_runs(tmp_path: Path, pm2_daemon_stand_in: int) -> None:
    assert run_pm2_listing(tmp_path / "alive", pm2_daemon_stand_in, socket_file=True) == ("[]", True)
    # A stale pm2.pid that another live process's pid now names: pm2 jlist would start a daemon (a write).
    assert run_pm2_listing(tmp_path / "reused", os.getpid(), socket_file=True) == ("pm2_not_running", False)
    assert run_pm2_listing(tmp_path / "no-socket", pm2_daemon_stand_in, socket_file=False) == ("pm2_not_running", False)
    assert run_pm2_listing(tmp_path / "self", "self", socket_file=True) == ("pm2_not_running", False)
    assert run_pm2_listing(tmp_path / "none", None, socket_file=True) == ("pm2_not_running", False)


def test_readonly_problem_names_the_offending_command() -> None:
    assert "nginx -t" in (read_only_problem("df -P /; nginx -t; free -b") or "")


def test_readonly_classify_lets_writes_pass_only_inside_opsguards_own_dirs() -> None:
    lock = "/run/lock/opsguard"
    assert classify(f"umask 077; mkdir -p -- /run/lock && mkdir -- {lock} && printf x > {lock}/owner", writable=(lock,)) is None
    assert classify(f"rm -f -- {lock}/owner && rmdir -- {lock}", writable=(lock,)) is None
    assert classify("mkdir -p -- /run/lock/elsewhere", writable=(lock,)) is not None
    assert classify(f"printf x > {lock}/../../../etc/cron.d/x", writable=(lock,)) is not None
    assert classify(f"rm -rf -- {lock}", writable=(lock,)) is not None
    # An option holding a path writes there: only the options opsguard's own bookkeeping uses.
    assert classify(f"mv --target-directory=/etc/cron.d {lock}/owner", writable=(lock,)) is not None
    assert classify(f"mv -t /etc/cron.d {lock}/owner", writable=(lock,)) is not None
    assert classify(f"mkdir --mode=777 -- {lock}", writable=(lock,)) is not None
    assert classify(f"touch -r /etc/shadow -- {lock}/x", writable=(lock,)) is not None
    assert classify(f"mv -f -- {lock}/a {lock}/b", writable=(lock,)) is None


def test_readonly_environment_problem_refuses_proxy_variables_in_either_case() -> None:
    from opsguard.readonly import environment_problem

    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTPS_PROXY"):
        assert environment_problem({name: "http://127.0.0.1:6379"}) is not None, name
        assert read_only_problem(f"export {name}=http://127.0.0.1:6379; curl -s http://x/") is not None, name
    assert environment_problem({"lang": "C"}) is None
