"""Planning: due-ness rules, candidate selection, and the planner that turns due subscribers into editions."""
