"""Training: the engine (fit, train_one_epoch), freezing stages, EMA, schedule, distributed helpers."""
