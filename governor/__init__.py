"""The governor: chooses, per inference, the knob setting (operating point) that keeps a model inside its
energy, latency and power budgets at the best accuracy, under a power policy.

    points     OperatingPoint, load_profile (the JSON of `tunable profile`), pareto_front, default_front
    budgets    parse_budget(s) ('50mJ', '30ms', '2W'), BatteryGoal (--battery NAME --until HH:MM / --hours H)
    controller Controller: choose() / observe() / explain() / summary(); slowdown estimates, time-division
    policy     TOML policies: modes, rules, budgets; load_policy with line-precise PolicyError
    modes      ModeSelector (rules with hysteresis, hold time, manual mode), the `tunable mode set` state file
    system     thermal zones, cpufreq cap, thread count, batteries by name (through tunable.energy)
    engine     Governor: all of the above for the run loop
"""
