"""The service's settings are leadscore's one settings model (``leadscore.settings``).

Kept so ``from serving.settings import Settings`` keeps working; new code imports from
``leadscore.settings``.
"""

from leadscore.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError"]
