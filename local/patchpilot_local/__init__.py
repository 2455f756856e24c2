"""PatchPilot's local runtime: the real ASL and handlers on moto, a simulated fleet, a compressed clock.

Never imported by Lambda code and never shipped to Lambda.
"""
