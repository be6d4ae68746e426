"""update_action: the single writer of everything that happens to a run after CreateRun."""
