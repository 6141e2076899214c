"""Fixture ``torque_env``: the Torque-compatible PBS wrappers (slurm-wlm-torque) on the private Slurm."""
