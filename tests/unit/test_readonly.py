"""The read-only vocabulary: an allow-list that fails closed. Everything it lets through must be unable to
write; everything else (unknown commands, writes, syntax it does not follow) counts as a change."""

from __future__ import annotations

import pytest

from opsguard.readonly import PM2_DAEMON_RUNNING, READ_ONLY_PGOPTIONS, classify, read_only_problem

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
    "awk '$2 ~ /^(apt|dpkg)$/ { printf \"%s \", $1 }'",
    "sed 's/^Inst /WARNING: /'",
    "find /var/backups -type f -printf '%T@ %s %p\\n' | sort -n | tail -n 1",
    "apt-get -o DPkg::Lock::Timeout=600 -s upgrade",
    "systemctl is-system-running; systemctl --failed --plain --no-legend",
    "docker ps --format '{{.Names}}'",
    "docker compose config -q",
    "docker compose exec -T \"$service\" pg_isready",
    f"docker exec -e PGOPTIONS={READ_ONLY_PGOPTIONS_WORD} postgresql psql -X -U zpro -d zpro -tAc 'select 1'",
    "docker exec -i postgresql pg_restore -l < /var/backups/opsguard/x/database.dump",
    "docker exec redis-zpro redis-cli ping",
    "curl -sS -o /dev/null --max-time 5 -w '%{http_code}\\n' http://localhost:3000/",
    f"if {PM2_DAEMON_RUNNING}; then pm2 jlist; else echo pm2_not_running; fi",
    "sudo -n -iu deployzdg -- sh -c 'cat /home/deployzdg/.pm2/logs/zpro-backend-error.log'",
    "needrestart -r l -b",
    "kill -0 1",
    "pgrep -g 1 >/dev/null",
    "journalctl --list-boots",
    "crontab -l -u deployzdg",
    "openssl x509 -noout -enddate -in /etc/ssl/cert.pem",
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


def test_readonly_problem_names_the_offending_command() -> None:
    assert "nginx -t" in (read_only_problem("df -P /; nginx -t; free -b") or "")


def test_readonly_classify_lets_writes_pass_only_inside_opsguards_own_dirs() -> None:
    lock = "/run/lock/opsguard"
    assert classify(f"umask 077; mkdir -p -- /run/lock && mkdir -- {lock} && printf x > {lock}/owner", writable=(lock,)) is None
    assert classify(f"rm -f -- {lock}/owner && rmdir -- {lock}", writable=(lock,)) is None
    assert classify("mkdir -p -- /run/lock/elsewhere", writable=(lock,)) is not None
    assert classify(f"printf x > {lock}/../../../etc/cron.d/x", writable=(lock,)) is not None
    assert classify(f"rm -rf -- {lock}", writable=(lock,)) is not None
