"""``mlwarden lint``: AST rules for risky ML loading code. The linted code is parsed, never
imported or executed."""
