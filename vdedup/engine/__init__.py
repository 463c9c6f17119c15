"""Engine layer: backup, restore, check, stats. Reports progress as events; never prints."""
