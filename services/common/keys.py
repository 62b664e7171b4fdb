"""What a deployment trusts when it starts: the region registry, the regions it serves,
and the public-key registry after checking its own key custody."""

from __future__ import annotations

from contracts.keyring import KeyRegistrySource, custody_problems
from contracts.local_trust import enrol_local_regions, platform_public_key
from domain.regions import RegionRegistry, load_region_registry
from services.common.config import Settings


def load_registry(settings: Settings) -> RegionRegistry:
    """The region registry (names, provinces, platform connection) with the operator's
    added regions (services/common/regions_admin.py); keys are apart."""
    return load_region_registry(settings.region_registry_file, settings.region_overlay_file)


def served_regions(settings: Settings, registry: RegionRegistry) -> set[str]:
    """The regions this deployment serves. Only the local demo may leave them unset (then
    it serves every region, playing both agencies)."""
    served = set(settings.served_regions)
    unknown = sorted(code for code in served if registry.get(code) is None)
    if unknown:
        raise ValueError(f"MEDTRANSFER_SERVED_REGIONS names unknown regions: {unknown}")
    if not served and not settings.local_demo:
        raise ValueError("MEDTRANSFER_SERVED_REGIONS must list the regions this deployment serves")
    return served or set(registry.codes())


def load_trust(settings: Settings, served: set[str]) -> KeyRegistrySource:
    """The public-key registry, verified with the platform operator's key, after checking
    key custody: the key directory holds private keys of served regions only.

    In the local demo the deployment first plays the platform operator for its own
    regions (contracts/local_trust.py); elsewhere it never creates or registers a key.
    """
    platform_public = settings.platform_public_key
    if settings.local_demo:
        enrol_local_regions(settings.key_registry_file, settings.keys_dir, served)
        platform_public = platform_public or platform_public_key(settings.key_registry_file.parent)
    problems = custody_problems(settings.keys_dir, served)
    if problems:
        raise ValueError("; ".join(problems))
    if not platform_public:
        raise ValueError(
            "MEDTRANSFER_PLATFORM_PUBLIC_KEY is not set: the key registry cannot be checked"
        )
    # The newest registry seen is remembered in the deployment's data directory (the key
    # folder is read-only in production): an older one, from before a revocation, is
    # refused, also after a restart.
    return KeyRegistrySource(
        settings.key_registry_file, platform_public, settings.data_dir / "registry-issued-at"
    )
