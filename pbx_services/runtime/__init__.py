"""The daemon runtime every role runs on: start-up, the loop driving a sans-IO core, workers, stop.

`daemon.run` is a daemon's whole life (argv and config are the CLI's); `driver.CoreDriver`
feeds a sans-IO core the time and arms its timers; `supervisor.WorkerSupervisor` runs a
role's workers as processes and restarts one that dies.
"""
