"""Which tier a worker's hardware qualifies for (the rules are shared with the desktop app)."""

from shared.tiers import TierDecision, TierRequirementsNotMet, TierRules, assign_tier

__all__ = ["TierDecision", "TierRequirementsNotMet", "TierRules", "assign_tier"]
