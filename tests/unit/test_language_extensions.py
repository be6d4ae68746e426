"""The local expansion of Fn::ForEach (local_stack/language_extensions.py): what CloudFormation's
AWS::LanguageExtensions transform hands the SAM transform, for the loops template.yaml writes."""

from __future__ import annotations

import pytest

from local_stack.language_extensions import expand


def _template(resources: dict, transform=("AWS::LanguageExtensions", "AWS::Serverless-2016-10-31")) -> dict:
    return {"Transform": list(transform), "Resources": resources}


def test_nested_loops_make_one_copy_per_item_with_the_identifiers_replaced():
    template = _template(
        {
            "Fn::ForEach::Outer": [
                "Function",
                ["CreateRun", "ReadRuns"],
                {
                    "${Function}LogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {"Key": {"Ref": "Function"}}},
                    "Fn::ForEach::Inner": [
                        "Metric",
                        ["Errors", "Throttles"],
                        {
                            "${Function}${Metric}Alarm": {
                                "Properties": {
                                    "MetricName": {"Ref": "Metric"},
                                    "Value": {"Fn::Sub": "${${Function}Function}"},
                                    "Text": {"Fn::Sub": "${AWS::StackName}: ${Metric}"},
                                }
                            }
                        },
                    ],
                },
            ],
            "Kept": {"Type": "AWS::SQS::Queue"},
        }
    )
    expanded = expand(template)
    assert expanded["Transform"] == "AWS::Serverless-2016-10-31"
    resources = expanded["Resources"]
    assert set(resources) == {
        "CreateRunLogGroup", "ReadRunsLogGroup", "Kept",
        "CreateRunErrorsAlarm", "CreateRunThrottlesAlarm", "ReadRunsErrorsAlarm", "ReadRunsThrottlesAlarm",
    }  # fmt: skip
    assert resources["ReadRunsLogGroup"]["Properties"]["Key"] == "ReadRuns"
    alarm = resources["CreateRunThrottlesAlarm"]["Properties"]
    assert alarm == {
        "MetricName": "Throttles",
        "Value": {"Fn::Sub": "${CreateRunFunction}"},
        "Text": {"Fn::Sub": "${AWS::StackName}: Throttles"},
    }
    assert "Fn::ForEach::Outer" in template["Resources"]  # the template read is left as it was


def test_ampersand_identifiers_keep_only_alphanumerics_for_keys():
    expanded = expand(_template({"Fn::ForEach::Q": ["Name", ["a-b", "c.d"], {"Queue&{Name}": {"Tag": "${Name}"}}]}))
    assert expanded["Resources"] == {"Queueab": {"Tag": "a-b"}, "Queuecd": {"Tag": "c.d"}}


def test_a_template_without_the_transform_is_returned_as_it_is():
    template = {"Transform": "AWS::Serverless-2016-10-31", "Resources": {"Fn::ForEach::X": ["I", ["a"], {}]}}
    assert expand(template) is template


@pytest.mark.parametrize(
    "loop",
    [
        ["Name", ["A", "A"], {"Queue${Name}": {}}],  # two items make the same resource
        ["Name", {"Ref": "AList"}, {"Queue${Name}": {}}],  # a parameter's list: not supported here
        ["Name", ["A"]],  # no fragment
    ],
)
def test_a_loop_it_cannot_expand_faithfully_is_refused(loop):
    with pytest.raises(ValueError):
        expand(_template({"Fn::ForEach::Q": loop}))
