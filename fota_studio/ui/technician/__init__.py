"""The technician view: a guided, large-type page to update one ECU (see technician_view)."""
