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
    "echo \"$(( $(date +%s) - 5 ))\"",
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

CHANGES = [
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


def test_readonly_problem_names_the_offending_command() -> None:
    assert "nginx -t" in (read_only_problem("df -P /; nginx -t; free -b") or "")


def test_readonly_classify_lets_writes_pass_only_inside_opsguards_own_dirs() -> None:
    lock = "/run/lock/opsguard"
    assert classify(f"umask 077; mkdir -p -- /run/lock && mkdir -- {lock} && printf x > {lock}/owner", writable=(lock,)) is None
    assert classify(f"rm -f -- {lock}/owner && rmdir -- {lock}", writable=(lock,)) is None
    assert classify("mkdir -p -- /run/lock/elsewhere", writable=(lock,)) is not None
    assert classify(f"printf x > {lock}/../../../etc/cron.d/x", writable=(lock,)) is not None
    assert classify(f"rm -rf -- {lock}", writable=(lock,)) is not None
