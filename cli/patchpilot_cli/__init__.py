"""The `patchpilot` operator command: a deployed stack (start, status, approve, exclusions) and policy rendering.

Runs against a real account with boto3 only. It never imports moto or the simulator at module level: `simulate` and
`invoke` load `patchpilot_sim` (the local runtime) when they run.
"""
