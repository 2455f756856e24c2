"""Patch Manager operating-system names from what SSM reports about an instance."""

_LINUX_NAMES = (
    ("amazon linux", "2023", "AMAZON_LINUX_2023"),
    ("amazon linux", "2", "AMAZON_LINUX_2"),
    ("ubuntu", "", "UBUNTU"),
    ("red hat", "", "REDHAT_ENTERPRISE_LINUX"),
    ("centos", "", "CENTOS"),
    ("rocky", "", "ROCKY_LINUX"),
    ("alma", "", "ALMA_LINUX"),
)


def operating_system_of(platform_type: str, platform_name: str, platform_version: str) -> str:
    """The Patch Manager `OperatingSystem` of an instance.

    Parameters
    ----------
    platform_type, platform_name, platform_version : str
        As DescribeInstanceInformation reports them (``Linux``, ``Amazon Linux``, ``2023``).

    Returns
    -------
    str
        ``WINDOWS``, ``AMAZON_LINUX_2023``, ... or ``UNKNOWN``.
    """
    if platform_type == "Windows":
        return "WINDOWS"
    name = platform_name.lower()
    for fragment, version_prefix, operating_system in _LINUX_NAMES:
        if fragment in name and platform_version.startswith(version_prefix):
            return operating_system
    return "UNKNOWN"
