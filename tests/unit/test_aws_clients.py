"""The functions' AWS clients: botocore's, from one session whose loader knows only the services
the control plane calls (and every one of them is one botocore ships)."""

from __future__ import annotations

import botocore.session
import pytest

from runplane.aws import clients as aws_clients


def test_every_service_the_control_plane_calls_is_one_botocore_ships():
    shipped = set(botocore.session.get_session().get_available_services())
    assert shipped >= aws_clients.SERVICES


def test_clients_share_one_session_configured_from_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setattr(aws_clients, "_sessions", [])
    scheduler = aws_clients.client("scheduler")
    logs = aws_clients.client("logs", region_name="us-east-2")
    assert scheduler.meta.region_name == "eu-west-1" and logs.meta.region_name == "us-east-2"
    assert len(aws_clients._sessions) == 1
    assert aws_clients.session().get_component("data_loader").list_available_services("service-2") == sorted(
        aws_clients.SERVICES
    )


def test_a_service_it_does_not_call_is_refused():
    with pytest.raises(ValueError, match="ec2"):
        aws_clients.client("ec2")
    with pytest.raises(ValueError, match="dynamodb"):  # runplane.aws.http's
        aws_clients.client("dynamodb")
