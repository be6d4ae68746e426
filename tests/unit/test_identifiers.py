import pytest

from runplane.connect.errors import Code
from runplane.flyte.identifiers import (
    GENERATED_NAME_ALPHABET,
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


def test_taskaction_name_is_run_dash_action():
    assert taskaction_name("rabc123", "a0") == "rabc123-a0"
    assert taskaction_name("rabc123", "train") == "rabc123-train"
