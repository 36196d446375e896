"""The sandbox: simulated provider APIs (simulator.py) and loopback SSH hosts, for tests and demos.

Nothing here talks to a real provider or a real VPS. Modules are imported on use; this package
imports nothing so that `opsguard --help` stays light.
"""
