"""The real memory sweep, on AWS: AWS Lambda Power Tuning run against one of
the deployed stack's functions, and the size chosen by the rule the
modelled sweep uses (docs/cost.md): the cheapest size whose mean duration is
within 25% or 10 ms of the duration at 1,769 MB (a whole vCPU).

Power Tuning (github.com/alexcasalboni/aws-lambda-power-tuning) is deployed
once from the Serverless Application Repository as the stack
`serverlessrepo-lambda-power-tuning`; it invokes the function `--num` times
at each size with the payload given, so pick a payload that is safe to
repeat (a pull, a read, a sign-in with a wrong password).

Usage (scripts/deploy --tune runs it):
  power_tuning.py STACK LOGICAL_ID PAYLOAD_FILE [--num N]
"""

import argparse
import json
import sys
import time

POWER_TUNING_APP = (
    "arn:aws:serverlessrepo:us-east-1:451282441545:applications/aws-lambda-power-tuning"
)
POWER_TUNING_STACK = "serverlessrepo-lambda-power-tuning"
POWER_VALUES = [128, 256, 512, 1024, 1769, 2048]
WHOLE_VCPU_MB = 1769


def choose(stats):
    """The cheapest size meeting the latency rule, from Power Tuning's
    `stats` ([{value, averagePrice, averageDuration}]): within 25% or 10 ms
    (whichever is larger) of the duration at a whole vCPU, or at the largest
    size measured if 1,769 MB was not."""
    if not stats:
        raise ValueError("Power Tuning returned no measurements")
    by_size = {s["value"]: s for s in stats}
    base = by_size.get(WHOLE_VCPU_MB) or by_size[max(by_size)]
    allowed = max(base["averageDuration"] * 1.25, base["averageDuration"] + 10.0)
    meeting = [s for s in stats if s["averageDuration"] <= allowed]
    return min(meeting, key=lambda s: (s["averagePrice"], s["value"]))


def table(stats, chosen, template_mb):
    lines = [
        "| memory | mean duration | mean cost per invocation | |",
        "|---:|---:|---:|---|",
    ]
    for s in sorted(stats, key=lambda s: s["value"]):
        marks = []
        if s["value"] == chosen["value"]:
            marks.append("chosen")
        if s["value"] == template_mb:
            marks.append("the template's")
        lines.append(
            f"| {s['value']} MB | {s['averageDuration']:.1f} ms | "
            f"${s['averagePrice']:.10f} | {', '.join(marks)} |"
        )
    return "\n".join(lines)


def ensure_power_tuning(session):
    """The Power Tuning state machine's ARN, deploying it first if needed."""
    from botocore.exceptions import ClientError

    cloudformation = session.client("cloudformation")
    try:
        stack = cloudformation.describe_stacks(StackName=POWER_TUNING_STACK)["Stacks"][0]
    except ClientError:
        print("deploying AWS Lambda Power Tuning from the Serverless Application Repository")
        repo = session.client("serverlessrepo", region_name="us-east-1")
        change_set = repo.create_cloud_formation_change_set(
            ApplicationId=POWER_TUNING_APP,
            StackName="lambda-power-tuning",
            Capabilities=["CAPABILITY_IAM"],
        )
        cloudformation.get_waiter("change_set_create_complete").wait(
            ChangeSetName=change_set["ChangeSetId"]
        )
        cloudformation.execute_change_set(ChangeSetName=change_set["ChangeSetId"])
        cloudformation.get_waiter("stack_create_complete").wait(StackName=POWER_TUNING_STACK)
        stack = cloudformation.describe_stacks(StackName=POWER_TUNING_STACK)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return outputs["StateMachineARN"]


def main(argv):
    import boto3

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack")
    parser.add_argument("logical_id")
    parser.add_argument("payload_file")
    parser.add_argument("--num", type=int, default=50)
    args = parser.parse_args(argv)
    with open(args.payload_file) as f:
        payload = json.load(f)

    session = boto3.Session()
    resource = session.client("cloudformation").describe_stack_resource(
        StackName=args.stack, LogicalResourceId=args.logical_id
    )["StackResourceDetail"]["PhysicalResourceId"]
    function = session.client("lambda").get_function(FunctionName=resource)["Configuration"]
    state_machine = ensure_power_tuning(session)
    stepfunctions = session.client("stepfunctions")
    execution = stepfunctions.start_execution(
        stateMachineArn=state_machine,
        input=json.dumps(
            {
                "lambdaARN": function["FunctionArn"],
                "powerValues": POWER_VALUES,
                "num": args.num,
                "payload": payload,
                "parallelInvocation": False,
                "strategy": "cost",
                "includeOutputResults": True,
            }
        ),
    )["executionArn"]
    print(f"sweeping {resource} at {POWER_VALUES} MB, {args.num} invocations each")
    while True:
        described = stepfunctions.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            break
        time.sleep(5)
    if described["status"] != "SUCCEEDED":
        sys.exit(f"Power Tuning ended {described['status']}: {described.get('error', '')}")
    output = json.loads(described["output"])
    stats = output["stats"]
    chosen = choose(stats)
    print(table(stats, chosen, function["MemorySize"]))
    print(
        f"\n{args.logical_id}: {chosen['value']} MB by the rule (the template has "
        f"{function['MemorySize']} MB). Power Tuning's chart: "
        f"{output.get('stateMachine', {}).get('visualization', '-')}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
