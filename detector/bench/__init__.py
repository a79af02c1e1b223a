"""Benchmarks of mAP across models and strategies: plan.py validates a bench file into runs,
run.py trains and tests each run, report.py writes the tables and plots."""
