"""moto's EC2 lookups without O(fleet) scans: an instance by id, and one resource's tags.

moto 5.2.5 finds one instance (``InstanceBackend.get_instance``) by listing ``all_instances()``, which shallow-copies
every reservation first, and ``run_instances`` looks each new instance up again to attach its root volume. Launching
the simulated fleet one instance per call therefore cost O(fleet) copies per instance, O(fleet²) in all: a
10,000-instance fleet spent more than ten minutes launching. This looks the id up in an index of the instances seen
(checked against moto's reservations on every use: the reservation still holds that very instance), else in the
reservations as they are, the newest first (a just-launched instance is found at once), indexing each instance it
passes: the same instance, or moto's own ``InvalidInstanceIdError`` for an unknown id. Instance ids are unique, so
the order of the search does not change which instance is found. ``get_instance_by_id`` (CreateTags checks every
resource it tags exists that way) is the same lookup, ``None`` for an unknown id as in moto.

moto reads one resource's tags (``TaggedEC2Resource.get_tags``, used by DescribeInstances for every instance it
describes and by every ``tag:`` filter) by filtering ALL tags of the region on ``resource-id``: describing N
instances costs O(N x every tag), quadratic in the fleet. moto already keeps the tags per resource id
(``TagBackend.tags``); the filter is an anchored ``fnmatch`` pattern of the id, so for an id without wildcard
characters it matches exactly that id's entry. This reads that entry directly and builds the same records in the same
order (the resource's tags in the order they were created). DescribeTags itself is moto's own code, unchanged.

``run_instances`` tags each new instance's volumes after finding them with ``describe_volumes(volume_ids=[id])``,
which lists every volume of the region to keep the one: O(fleet) per launch. One known id is read from moto's
volumes by id (the same one-volume list); every other call (several ids, filters, an unknown id and its error) is
moto's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from moto.ec2.exceptions import InvalidInstanceIdError
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.elastic_block_store import EBSBackend, Volume
from moto.ec2.models.instances import Instance, InstanceBackend, Reservation
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

_ORIGINAL = InstanceBackend.get_instance
_ORIGINAL_BY_ID = InstanceBackend.get_instance_by_id
_ORIGINAL_GET_TAGS = TaggedEC2Resource.get_tags
_ORIGINAL_DESCRIBE_VOLUMES = EBSBackend.describe_volumes
_WILDCARDS = frozenset("*?[")
_INDEX_ATTRIBUTE = "_patchpilot_instance_index"  # instance id -> (reservation id, instance), checked on every use


def _get_instance(self: InstanceBackend, instance_id: str) -> Instance:
    index: dict[str, tuple[str, Instance]] = self.__dict__.setdefault(_INDEX_ATTRIBUTE, {})
    known = index.get(instance_id)
    if known is not None:
        reservation = self.reservations.get(known[0])
        if reservation is not None and any(instance is known[1] for instance in reservation.instances):
            return known[1]
    try:
        found = _search(reversed(self.reservations.values()), instance_id, index)
    except RuntimeError:  # another thread launched meanwhile: search a copy
        found = _search(reversed(list(self.reservations.values())), instance_id, index)
    if found is None:
        raise InvalidInstanceIdError(instance_id)
    return found


def _get_instance_by_id(self: InstanceBackend, instance_id: str) -> Instance | None:
    try:
        return _get_instance(self, instance_id)
    except InvalidInstanceIdError:
        return None


def _search(
    reservations: Iterable[Reservation], instance_id: str, index: dict[str, tuple[str, Instance]]
) -> Instance | None:
    """Search the reservations, the newest first (run_instances looks a new one up), indexing what it passes."""
    for reservation in reservations:
        for instance in reservation.instances:
            index[instance.id] = (reservation.id, instance)
            if instance.id == instance_id:
                return instance
    return None


def _describe_volumes(self: EBSBackend, volume_ids: list[str] | None = None, filters: Any = None) -> list[Volume]:
    if filters or not volume_ids or len(volume_ids) != 1 or volume_ids[0] not in self.volumes:
        return _ORIGINAL_DESCRIBE_VOLUMES(self, volume_ids, filters)
    return [self.volumes[volume_ids[0]]]


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
    InstanceBackend.get_instance_by_id = _get_instance_by_id  # type: ignore[method-assign]
    TaggedEC2Resource.get_tags = _get_tags  # type: ignore[method-assign]
    EBSBackend.describe_volumes = _describe_volumes  # type: ignore[method-assign]


def uninstall() -> None:
    """Put moto's own lookups back."""
    InstanceBackend.get_instance = _ORIGINAL  # type: ignore[method-assign]
    InstanceBackend.get_instance_by_id = _ORIGINAL_BY_ID  # type: ignore[method-assign]
    TaggedEC2Resource.get_tags = _ORIGINAL_GET_TAGS  # type: ignore[method-assign]
    EBSBackend.describe_volumes = _ORIGINAL_DESCRIBE_VOLUMES  # type: ignore[method-assign]
