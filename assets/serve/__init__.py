"""What consumes a champion: batch-scored prediction tables (online serving comes next)."""
