import pytest

from runplane.ops.settings import ApiSettings, ReadSettings, ReconcileSettings, SettingsError
from runplane.table.records import PREVIOUS_RUN_INDEX_NAME, RUN_INDEX_NAME


def test_api_settings_name_the_missing_variable():
    with pytest.raises(SettingsError, match="ACTIONS_TABLE"):
        ApiSettings.from_env({"DATA_BUCKET": "bucket"})


def test_api_settings_default_storage_prefix_is_the_bucket():
    settings = ApiSettings.from_env({"ACTIONS_TABLE": "t-1", "DATA_BUCKET": "bucket"})
    assert settings.effective_storage_prefix == "s3://bucket"
    with pytest.raises(SettingsError, match="s3://"):
        ApiSettings.from_env({"ACTIONS_TABLE": "t-1", "DATA_BUCKET": "bucket", "STORAGE_PREFIX": "/tmp"})


def test_the_page_token_key_is_required_and_never_a_public_default():
    with pytest.raises(SettingsError, match="PAGE_TOKEN_SECRET is required"):
        ReadSettings.from_env({"ACTIONS_TABLE": "t-1"})
    short = "flyte-serverless"  # the old public default, and anything that short
    with pytest.raises(SettingsError, match="at least 32 characters") as refused:
        ReadSettings.from_env({"ACTIONS_TABLE": "t-1", "PAGE_TOKEN_SECRET": short})
    assert short not in str(refused.value)  # a secret is never echoed into a log line
    secret = "k" * 48
    assert ReadSettings.from_env({"ACTIONS_TABLE": "t-1", "PAGE_TOKEN_SECRET": secret}).page_token_secret == secret


def test_read_settings_list_runs_from_the_current_run_index_unless_told_the_previous_one():
    env = {"ACTIONS_TABLE": "t-1", "PAGE_TOKEN_SECRET": "k" * 48}
    assert ReadSettings.from_env(env).run_index == RUN_INDEX_NAME
    assert ReadSettings.from_env({**env, "RUN_INDEX_NAME": PREVIOUS_RUN_INDEX_NAME}).run_index == "RunsByCreatedAt"
    with pytest.raises(SettingsError, match="RUN_INDEX_NAME"):
        ReadSettings.from_env({**env, "RUN_INDEX_NAME": "SomeIndex"})


def test_reconcile_needs_exactly_one_way_to_the_cluster():
    with pytest.raises(SettingsError):
        ReconcileSettings.from_env({"ACTIONS_TABLE": "t-1"})
    with pytest.raises(SettingsError):
        ReconcileSettings.from_env({"ACTIONS_TABLE": "t-1", "KUBECONFIG": "/k", "EKS_CLUSTER_NAME": "c"})
    assert ReconcileSettings.from_env({"ACTIONS_TABLE": "t-1", "EKS_CLUSTER_NAME": "c"}).namespace == "flyte"


def test_reconcile_namespace_must_be_a_label():
    with pytest.raises(SettingsError, match="TASKACTION_NAMESPACE"):
        ReconcileSettings.from_env({"ACTIONS_TABLE": "t-1", "KUBECONFIG": "/k", "TASKACTION_NAMESPACE": "Bad_NS"})
