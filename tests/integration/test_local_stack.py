"""The local stack's own guarantees."""

import pytest

from local_stack.stack import LocalStack, StackAlreadyRunning, StackConfig

pytestmark = pytest.mark.integration


def test_a_second_stack_on_the_same_state_fails_clearly(tmp_path):
    first = LocalStack(StackConfig(state_dir=tmp_path))
    first._acquire_lock()
    try:
        with pytest.raises(StackAlreadyRunning, match="already running"):
            LocalStack(StackConfig(state_dir=tmp_path)).start()
    finally:
        first._release_lock()
    second = LocalStack(StackConfig(state_dir=tmp_path))
    second._acquire_lock()  # free again once the first is gone
    second._release_lock()
