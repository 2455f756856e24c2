"""moto's EC2 instance lookup by id without copying every reservation on each lookup.

moto 5.2.5 finds one instance (``InstanceBackend.get_instance``) by listing ``all_instances()``, which shallow-copies
every reservation first, and ``run_instances`` looks each new instance up again to attach its root volume. Launching
the simulated fleet one instance per call therefore cost O(fleet) copies per instance, O(fleet²) in all: a
10,000-instance fleet spent more than ten minutes launching. This looks the id up in the reservations as they are:
the same instance, or moto's own ``InvalidInstanceIdError`` for an unknown id.
"""

from __future__ import annotations

from moto.ec2.exceptions import InvalidInstanceIdError
from moto.ec2.models.instances import Instance, InstanceBackend

_ORIGINAL = InstanceBackend.get_instance


def _get_instance(self: InstanceBackend, instance_id: str) -> Instance:
    for reservation in list(self.reservations.values()):
        for instance in reservation.instances:
            if instance.id == instance_id:
                return instance
    raise InvalidInstanceIdError(instance_id)


def install() -> None:
    """Use the copy-free lookup in moto's EC2 backend (idempotent; for the local runtime's process)."""
    InstanceBackend.get_instance = _get_instance  # type: ignore[method-assign]


def uninstall() -> None:
    """Put moto's own lookup back."""
    InstanceBackend.get_instance = _ORIGINAL  # type: ignore[method-assign]
