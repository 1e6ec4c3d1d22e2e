#!/usr/bin/env python3
"""Parses Prometheus text exposition from stdin with the reference parser
of the official Python client (prometheus_client.parser) and prints the
families as JSON, for tests/it/observability.rs to check.

Exit 3 when prometheus_client is not installed (the test then SKIPs, or
fails under ECHO_SERVER_REQUIRE_TOOLS=1); a parse error raises (exit 1).
"""
import json
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("prometheus_client is not installed (pip install prometheus-client)", file=sys.stderr)
    sys.exit(3)

families = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    families[family.name] = {
        "type": family.type,
        "help": family.documentation,
        "samples": [
            {"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples
        ],
    }
print(json.dumps(families))
