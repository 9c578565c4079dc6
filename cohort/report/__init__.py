"""Report writers: candidates/evidence CSV, HTML summary, run.json, safe file output."""
