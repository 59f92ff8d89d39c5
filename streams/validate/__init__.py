"""The validate stage: raw events checked against declared rules, counted on four quality dimensions."""
