"""Runs a command against a DynamoDB API with the project's tables, then cleans up.

  with_dynamodb.py -- COMMAND [ARGS...]

If AWS_ENDPOINT_URL_DYNAMODB is already set (DynamoDB Local in Docker, say), that
endpoint is used as it is. Otherwise a moto server is started on a free loopback port and
stopped when the command ends, whether it passed, failed or was interrupted.

The command sees the SDK's standard variables (AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION,
credentials) and USERS_TABLE / REVOKED_TOKENS_TABLE / SESSIONS_TABLE. Exit status: the command's.
"""

import os
import signal
import subprocess
import sys

from devtools.moto import LOG_DIR, create_tables, start_moto, stop


def interrupt(*_):
    raise KeyboardInterrupt


def main():
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.exit(__doc__)

    env = dict(os.environ)
    env.setdefault("AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1"))
    env.setdefault("AWS_DEFAULT_REGION", env["AWS_REGION"])  # boto3 reads this one
    moto = None
    # Make SIGTERM behave like Ctrl-C so the `finally` below always runs.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        endpoint = env.get("AWS_ENDPOINT_URL_DYNAMODB")
        if endpoint:
            env.setdefault("AWS_ACCESS_KEY_ID", "local")
            env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        else:
            LOG_DIR.mkdir(exist_ok=True)
            # Emulator credentials: moto accepts any; these never reach AWS.
            env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
            env.pop("AWS_PROFILE", None)
            env.pop("AWS_SESSION_TOKEN", None)
            with open(LOG_DIR / "moto.log", "wb") as log:
                moto, endpoint = start_moto(env, log)
            env["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
            print(f"moto DynamoDB server on {endpoint} (log: .local/moto.log)", file=sys.stderr)

        env.update(create_tables(endpoint, env))
        child = subprocess.Popen(argv, env=env)
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
            return 130
    except subprocess.CalledProcessError as e:
        sys.stderr.write(e.stderr or "")
        print("creating the tables failed", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        stop(moto)


if __name__ == "__main__":
    sys.exit(main())
