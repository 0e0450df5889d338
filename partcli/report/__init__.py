"""Pictures and reports: part-mask figures (``partcli visualize``) and one-page reports (``partcli report``)."""
