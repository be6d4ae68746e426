"""The phase guard as DynamoDB enforces it (moto), against the guard as a pure function, over
arbitrary sequences of status updates: the condition expression the store sends and
``runplane.flyte.phases.transition_allowed`` never disagree, and an action's phase and attempts
are exactly what the pure guard, applied update after update, says they are.

Hypothesis draws the sequences (a few dozen, each on a run of its own); the table-driven cases
are in tests/unit/test_phase_guard.py and test_action_lifecycle.py.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.outcomes import StatusUpdate
from tests.builders import DOMAIN, PROJECT

pytestmark = pytest.mark.integration

# Each example is a CreateRun and a few UpdateItems on moto: enough examples to reach every
# phase pair and the retry paths, few enough to keep the file under a few seconds.
EXAMPLES = 40

updates = st.lists(
    st.tuples(
        st.sampled_from(sorted(phases.ALL_PHASES)),
        st.one_of(st.none(), st.integers(min_value=1, max_value=4)),  # None: the update keeps the attempt
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=updates)
def test_the_stored_phase_is_the_pure_guards_after_every_update(store, new_run, sequence):
    key = ActionKey(project=PROJECT, domain=DOMAIN, run=new_run(), name="a0")
    phase, attempts = phases.QUEUED, 1  # as CreateRun writes the root
    for new_phase, new_attempts in sequence:
        allowed = phases.transition_allowed(
            current=phase, current_attempts=attempts, new=new_phase, new_attempts=new_attempts
        )
        outcome = store.update_status(key, StatusUpdate(phase=new_phase, attempts=new_attempts))
        assert outcome.applied is allowed, (phase, attempts, new_phase, new_attempts)
        if allowed:
            phase, attempts = new_phase, new_attempts or attempts
        stored = store.get_action(key)
        assert stored is not None
        assert (stored.phase, stored.attempts) == (phase, attempts)
        assert outcome.phase == phase
