"""The learn stage: labels join their events, and every version that scored an event learns its label once."""
