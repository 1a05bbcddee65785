"""Every policy dmgate has: the one place to add one.

A policy is a module with a class that has a `name` (its key under `policies:` in the
policy file), a `config_model` (its section, a `policies.schema.PolicyConfig`), is built
from that section, and answers `evaluate(message, signals, now)` with a reason or None.
Listing the class here adds its section to the policy file's schema (policies.config) and
its verdicts to the engine (policies.engine).
"""

from __future__ import annotations

from policies.burst import Burst
from policies.first_contact_pitch import FirstContactPitch
from policies.follow_timing import FollowTiming
from policies.template_reuse import TemplateReuse

# In this order their reasons are listed when several match.
POLICY_TYPES = (FollowTiming, TemplateReuse, FirstContactPitch, Burst)
