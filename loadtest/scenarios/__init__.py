"""Scenarios (`lab scenario NAME`): incident, silent-failure, node-down, auth-storm."""
