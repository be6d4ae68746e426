import pytest

from runplane.connect.errors import Code
from runplane.flyte.identifiers import (
    GENERATED_NAME_ALPHABET,
    ActionKey,
    generate_run_name,
    taskaction_name,
    validate_run_name,
    validate_scope_name,
)
from tests.refusals import REFUSED, code_of


@pytest.mark.parametrize(
    "name",
    # Flyte's TestCreateRun_RejectsInvalidRunName, plus a non-ASCII letter.
    ["my.run", "1run", "My-Run", "my_run", "-run", "run-", "a" * 31, "", "rün"],
)
def test_invalid_run_names_are_invalid_argument(name):
    with pytest.raises(REFUSED) as info:
        validate_run_name(name)
    assert code_of(info.value) is Code.INVALID_ARGUMENT


@pytest.mark.parametrize("name", ["a", "my-run", "r" + "a" * 29, "a0b1-c2"])
def test_valid_run_names(name):
    assert validate_run_name(name) == name


def test_generated_names_follow_flyte_and_validate():
    names = {generate_run_name() for _ in range(200)}
    assert len(names) == 200
    for name in names:
        assert len(name) == 20 and name[0] == "r"
        assert set(name[1:]) <= set(GENERATED_NAME_ALPHABET)
        validate_run_name(name)


@pytest.mark.parametrize("value", ["", "a#b", "a/b", "-x", "x" * 64, "sp ace"])
def test_scope_names_reject_what_cannot_be_a_label_or_key(value):
    with pytest.raises(REFUSED) as info:
        validate_scope_name(value, field="run_id.project")
    assert code_of(info.value) is Code.INVALID_ARGUMENT
    assert "run_id.project" in info.value.message


def test_taskaction_names_carry_a_hash_of_project_and_domain_and_stay_dns_labels():
    import re

    a = taskaction_name(ActionKey(project="team-a", domain="development", run="rabc123", name="a0"))
    b = taskaction_name(ActionKey(project="team-b", domain="development", run="rabc123", name="a0"))
    prod = taskaction_name(ActionKey(project="team-a", domain="production", run="rabc123", name="a0"))
    assert a.startswith("rabc123-a0-") and len({a, b, prod}) == 3  # the same run name never collides
    # "<run>-<action>" alone is ambiguous ("r1-a" + "b" vs "r1" + "a-b"); the hash is not
    assert taskaction_name(ActionKey("p", "d", "r1-a", "b")) != taskaction_name(ActionKey("p", "d", "r1", "a-b"))
    longest = taskaction_name(ActionKey(project="p" * 63, domain="d" * 63, run="r" * 30, name="x" * 30))
    for name in (a, longest):
        assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
    assert taskaction_name(ActionKey("p", "d", "r", "a0")) == taskaction_name(ActionKey("p", "d", "r", "a0"))


def test_the_tables_own_partition_names_are_reserved_as_projects_and_domains():
    from runplane.flyte.identifiers import RESERVED_SCOPE_NAMES
    from runplane.table.leases import LEASE_PARTITION_PREFIX
    from runplane.table.projects import PROJECT_PARTITION
    from runplane.table.tasks import TASK_PARTITION_PREFIX

    for partition in (
        TASK_PARTITION_PREFIX,
        LEASE_PARTITION_PREFIX,
        PROJECT_PARTITION,
        "TRIGGERS#",
    ):  # triggers: task_registry
        assert partition.split("#")[0] in RESERVED_SCOPE_NAMES
    for name in ("TASKS", "TRIGGERS", "tasks", "Projects", "MIRROR"):
        with pytest.raises(REFUSED) as info:
            validate_scope_name(name, field="run_id.project")
        assert code_of(info.value) is Code.INVALID_ARGUMENT and "reserved" in info.value.message
