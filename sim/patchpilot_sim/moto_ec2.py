"""moto's EC2 lookups without O(fleet) scans: an instance by id, and one resource's tags.

moto 5.2.5 finds one instance (``InstanceBackend.get_instance``) by listing ``all_instances()``, which shallow-copies
every reservation first, and ``run_instances`` looks each new instance up again to attach its root volume. Launching
the simulated fleet one instance per call therefore cost O(fleet) copies per instance, O(fleet²) in all: a
10,000-instance fleet spent more than ten minutes launching. This looks the id up in an index of the instances seen
(checked against moto's reservations on every use: the reservation still holds that very instance), else in the
reservations as they are, the newest first (a just-launched instance is found at once), indexing each instance it
passes: the same instance, or moto's own ``InvalidInstanceIdError`` for an unknown id. Instance ids are unique, so
the order of the search does not change which instance is found.

moto reads one resource's tags (``TaggedEC2Resource.get_tags``, used by DescribeInstances for every instance it
describes and by every ``tag:`` filter) by filtering ALL tags of the region on ``resource-id``: describing N
instances costs O(N x every tag), quadratic in the fleet. moto already keeps the tags per resource id
(``TagBackend.tags``); the filter is an anchored ``fnmatch`` pattern of the id, so for an id without wildcard
characters it matches exactly that id's entry. This reads that entry directly and builds the same records in the same
order (the resource's tags in the order they were created). DescribeTags itself is moto's own code, unchanged.
"""

from __future__ import annotations

from moto.ec2.exceptions import InvalidInstanceIdError
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.instances import Instance, InstanceBackend
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

_ORIGINAL = InstanceBackend.get_instance
_ORIGINAL_GET_TAGS = TaggedEC2Resource.get_tags
_WILDCARDS = frozenset("*?[")
_INDEX_ATTRIBUTE = "_patchpilot_instance_index"  # instance id -> (reservation id, instance), checked on every use


def _get_instance(self: InstanceBackend, instance_id: str) -> Instance:
    index: dict[str, tuple[str, Instance]] = self.__dict__.setdefault(_INDEX_ATTRIBUTE, {})
    known = index.get(instance_id)
    if known is not None:
        reservation = self.reservations.get(known[0])
        if reservation is not None and any(instance is known[1] for instance in reservation.instances):
            return known[1]
    for reservation in reversed(list(self.reservations.values())):  # the newest first: run_instances looks it up
        for instance in reservation.instances:
            index[instance.id] = (reservation.id, instance)
            if instance.id == instance_id:
                return instance
    raise InvalidInstanceIdError(instance_id)


def _get_tags(self: TaggedEC2Resource) -> list[dict[str, str]]:
    resource_id: str | None = getattr(self, "id", None)
    if not resource_id:
        return []
    if _WILDCARDS.intersection(resource_id):  # moto would read these as a pattern: let it
        return _ORIGINAL_GET_TAGS(self)
    tags: dict[str, str] | None = self.ec2_backend.tags.get(resource_id)  # type: ignore[attr-defined]
    if not tags:
        return []
    resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
    return [
        {"resource_id": resource_id, "key": key, "value": value, "resource_type": resource_type}
        for key, value in list(tags.items())
    ]


def install() -> None:
    """Use the scan-free lookups in moto's EC2 backend (idempotent; for the local runtime's process)."""
    InstanceBackend.get_instance = _get_instance  # type: ignore[method-assign]
    TaggedEC2Resource.get_tags = _get_tags  # type: ignore[method-assign]


def uninstall() -> None:
    """Put moto's own lookups back."""
    InstanceBackend.get_instance = _ORIGINAL  # type: ignore[method-assign]
    TaggedEC2Resource.get_tags = _ORIGINAL_GET_TAGS  # type: ignore[method-assign]
