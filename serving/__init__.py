"""The BentoML scoring service, batch scoring and the page for sales reps."""
