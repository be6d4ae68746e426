"""Flyte's vocabulary, with no I/O: what every layer above names and checks.

``identifiers``   run and action keys, name validation and generation, TaskAction names
``phases``        ActionPhase helpers and the attempt-aware phase guard
``validation``    request fields checked before anything is read or written
``output_paths``  where Flyte's executor writes an action's outputs
"""
