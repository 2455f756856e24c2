"""PatchPilot's local runtime: the real ASL and handlers on moto, a simulated fleet, a compressed clock, scenarios.

Loaded by `patchpilot simulate`/`invoke`, the tests and the benchmark. Never imported by Lambda code (functions/) nor
by the operator CLI at module level, and never shipped to Lambda.
"""
