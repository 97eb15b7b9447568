#!/usr/bin/python3
"""Validates EVE JSON lines against Suricata's own EVE schema.

Usage: validate_eve.py SCHEMA [FILE...]   (no FILE: standard input)

SCHEMA is Suricata's etc/schema.json (../shared/schemas/suricata-eve-schema.json),
used unmodified but for the one relaxation Palisade's events need: the schema
allows no unknown top-level key, and Palisade puts its own fields in a single
top-level vendor object, `palisade`, which is allowed here (as an object, any
content). Every other key and type must validate as Suricata's own output does.

Prints one line per invalid event (FILE:LINE event_type: path: message) and
exits 1 if any event is invalid, 2 on a line that is not a JSON object.
Needs python3-jsonschema (Debian).
"""
import json
import sys

import jsonschema


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    schema["properties"]["palisade"] = {"type": "object"}
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    validator = cls(schema)
    files = sys.argv[2:] or ["-"]
    status = 0
    checked = 0
    for name in files:
        stream = sys.stdin if name == "-" else open(name, encoding="utf-8")
        with stream:
            for lineno, line in enumerate(stream, 1):
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError as e:
                    print(f"{name}:{lineno}: not JSON: {e}")
                    status = 2
                    continue
                if not isinstance(event, dict):
                    print(f"{name}:{lineno}: not a JSON object")
                    status = 2
                    continue
                checked += 1
                for err in sorted(validator.iter_errors(event), key=lambda e: list(e.path)):
                    path = "/".join(str(p) for p in err.absolute_path) or "(top)"
                    print(f"{name}:{lineno} {event.get('event_type')}: {path}: {err.message}")
                    status = max(status, 1)
    print(f"checked {checked} events", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
