"""The sandbox stubs: small fakes that stand in for system commands on the loopback test hosts.

opsguard/sandbox/hosts.py copies this package into <base>/stublib, writes a launcher
<base>/stub.py with the test interpreter in its shebang, and links the launcher as
<root>/stubs-bin/NAME for every name in ``hosts.STUB_NAMES``; that directory comes first in the
sandbox sshd's PATH. Each call (dispatch.py):

1. appends one JSON line to <root>/journal.jsonl (recording.py);
2. answers by the first matching rule in <root>/responses.json (rules.py), else by the fake of
   that command (fake_*.py), which looks like a healthy real host so a playbook run succeeds.

The fakes keep a little state in <root>/stub-state/ (core.load_state / core.save_state, wiped by a
reset), so a run reads back what it did, as on a real host: ``pm2 stop`` leaves the app stopped in
``pm2 jlist`` (and its port refuses curl) until ``pm2 restart``; ``sequelize db:migrate`` applies
the backend's migration files and psql then lists them; ``systemctl reboot`` gives the host a new
boot id; ``npm install`` / ``npm run build`` leave node_modules and the build output behind.

The modules: core (the call, state, output and argument helpers), recording, rules, dispatch (the
entry point and the table of fakes); one fake_<tool>.py per faked tool or family of tools; and the
models more than one fake reads: containers (docker's containers and images, and the commands run
inside them), gotemplate (docker --format), migrations (the Zpro database's migrations).

To add a behaviour: change the fake of that command, or add fake_<tool>.py with a docstring saying
what real behaviour it models and one line in dispatch.FAKES (the name must be in hosts.STUB_NAMES).

SAFETY: a stub never runs the real command (sudo runs the inner command, which resolves to a stub
again) and writes files only under <root>. stdlib only and few imports, so a call costs a few
milliseconds: a fake imports what it needs inside its functions.
"""
