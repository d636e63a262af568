"""The deploy rehearsal (`scripts/deploy --rehearse`, run by scripts/test):
what a first `sam deploy` would find wrong, found on a laptop.

1. template.yaml is translated by the SAM translator (aws-sam-translator,
   the library SAM itself uses) into plain CloudFormation, written to
   target/rehearsal/template.json;
2. the translation is linted with cfn-lint;
3. every Ref, GetAtt and ${...} in it names a parameter, a pseudo parameter
   or a resource, and every output resolves;
4. the stack is created in the emulator's CloudFormation: each resource is
   reported created, or not created with the reason; a resource type the
   emulator cannot create must be on the list below, with why that is
   acceptable;
5. every function's environment names resources that exist in the stack
   (the table, the bucket, the user pool and its client, the platform
   applications' parameters).

Usage: python infra/rehearse.py ENDPOINT_URL [TEMPLATE]. Exit 1 on any
failure.
"""

import io
import os
import json
import re
import sys
import uuid
import zipfile
from pathlib import Path

import boto3
from moto.cloudformation.parsing import get_model_map
from cfnlint import api as cfnlint_api
from cfnlint.decode import cfn_yaml
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
# Named anew each run, so that a rehearsal can run against a busy emulator.
STACK = f"rehearsal-{uuid.uuid4().hex[:8]}"
CODE_BUCKET = f"{STACK}-code"

# Types the emulator's CloudFormation cannot create, and why a green
# rehearsal is still worth having without them. A type missing from both
# the emulator and this list fails the rehearsal.
NOT_IN_THE_EMULATOR = {
    "AWS::ApiGatewayV2::Api": "the HTTP API (routes, JWT authorizer) is served by the local stack from "
    "the same template, and unit tests hold each function's route table equal to it and to the OpenAPI document",
    "AWS::ApiGatewayV2::Stage": "throttling and access logging only; cfn-lint checks the properties",
    "AWS::ApiGatewayV2::Authorizer": "the live channel's $connect authorizer: the local stack's WebSocket gateway "
    "runs the same function on the same event shape (tests/tests/stack/realtime.rs)",
    "AWS::ApiGatewayV2::Integration": "the local WebSocket gateway reads each route's target function from the template",
    "AWS::ApiGatewayV2::Route": "the local WebSocket gateway serves $connect, $disconnect and $default from the template",
    "AWS::ApiGatewayV2::RouteResponse": "$default's answer goes back to the client, as the local gateway does",
    "AWS::CloudWatch::Alarm": "alarms only read metrics; cfn-lint checks the properties",
    "AWS::CloudFront::Distribution": "the media CDN: the local stack serves the same signed URLs from the "
    "bucket's media/ prefix and checks them against the key group (tests/tests/stack/media_urls.rs)",
    "AWS::CloudFront::KeyGroup": "checked by the local stack's distribution, rotation included",
    "AWS::CloudFront::PublicKey": "the local stack makes the key pair and puts the private half in SSM",
    "AWS::CloudFront::OriginAccessControl": "how CloudFront signs its reads from the bucket; cfn-lint checks it",
    "AWS::Lambda::EventInvokeConfig": "resize's and the janitor's on-failure destination; its target queue is "
    "created and checked",
    "AWS::SQS::QueuePolicy": "lets EventBridge put an undeliverable janitor schedule event in its dead-letter "
    "queue; the emulator does not enforce resource policies, and the queue itself is created",
    "AWS::S3::BucketPolicy": "deny insecure transport, and let the distribution read media/; the emulator does not "
    "enforce resource policies (the local distribution reads media/ only)",
    "AWS::SNS::Subscription": "the optional alarm e-mail subscription",
}
# Created by the rehearsal through the service's own API instead (the
# emulator's CloudFormation lacks them, and functions name them).
BY_THEIR_API = {"AWS::Cognito::UserPool", "AWS::Cognito::UserPoolClient"}

PSEUDO = {"AWS::AccountId", "AWS::Region", "AWS::StackName", "AWS::Partition",
          "AWS::StackId", "AWS::URLSuffix", "AWS::NoValue", "AWS::NotificationARNs"}


class NoManagedPolicies(ManagedPolicyLoader):
    """The template names no managed policy by name; nothing to look up."""

    def __init__(self):
        pass

    def load(self):
        return {}


def plain(node):
    """cfn-lint's YAML nodes as plain JSON values."""
    return json.loads(json.dumps(node))


def translate(template_path):
    sam = plain(cfn_yaml.load(str(template_path)))
    parameters = {}
    for name, spec in sam.get("Parameters", {}).items():
        default = spec.get("Default", f"arn:aws:sns:{REGION}:123456789012:app/rehearsal/{name}")
        parameters[name] = str(default)
    # `sam build` replaces CodeUri with the built artefact's S3 location.
    for logical, resource in sam["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://{CODE_BUCKET}/{logical}.zip"
    return transform(sam, parameters, NoManagedPolicies()), parameters


def names_in(value, found):
    """Every Ref, GetAtt and ${...} target in a template value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else inner.split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                local = set(inner[1].keys()) if isinstance(inner, list) else set()
                for name in re.findall(r"\$\{([^}!]+)\}", text):
                    if name.split(".")[0] not in local:
                        found.add(name.split(".")[0])
                names_in(inner, found)
            else:
                names_in(inner, found)
    elif isinstance(value, list):
        for inner in value:
            names_in(inner, found)
    return found


def substitute(value, values):
    """`value` with every Ref, GetAtt and ${...} of `values` replaced."""
    if isinstance(value, dict):
        if list(value) == ["Ref"] and value["Ref"] in values:
            return values[value["Ref"]]
        if list(value) == ["Fn::GetAtt"]:
            target = value["Fn::GetAtt"]
            name = ".".join(target) if isinstance(target, list) else target
            if name in values or name.split(".")[0] in values:
                return values.get(name, values.get(name.split(".")[0]))
        if list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str):
            text = value["Fn::Sub"]
            for name, replacement in values.items():
                text = text.replace("${" + name + "}", replacement)
                # ${Resource.Attribute} of a resource left out: its stand-in.
                text = re.sub(r"\$\{" + re.escape(name) + r"\.[A-Za-z.]+\}", replacement, text)
            return {"Fn::Sub": text}
        return {k: substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, values) for v in value]
    return value


def create_by_their_api(cfn, client):
    """The Cognito pool and client, created as the local stack creates them;
    the values that stand for their Refs and GetAtts."""
    cognito = client("cognito-idp")
    values = {}
    for logical, resource in cfn["Resources"].items():
        if resource["Type"] == "AWS::Cognito::UserPool":
            pool = cognito.create_user_pool(PoolName=f"{STACK}-{logical}")["UserPool"]
            values[logical] = pool["Id"]
            values[f"{logical}.Arn"] = pool["Arn"]
            values[f"{logical}.ProviderURL"] = f"cognito-idp.{REGION}.amazonaws.com/{pool['Id']}"
    for logical, resource in cfn["Resources"].items():
        if resource["Type"] == "AWS::Cognito::UserPoolClient":
            pool_id = substitute(resource["Properties"]["UserPoolId"], values)
            made = cognito.create_user_pool_client(UserPoolId=pool_id, ClientName=f"{STACK}-{logical}")
            values[logical] = made["UserPoolClient"]["ClientId"]
    return values


def main():
    endpoint = sys.argv[1]
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)  # the translator asks boto for it
    template_path = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "template.yaml"
    failures = []
    out = ROOT / "target" / "rehearsal"
    out.mkdir(parents=True, exist_ok=True)

    print("1. SAM translation")
    cfn, parameters = translate(template_path)
    (out / "template.json").write_text(json.dumps(cfn, indent=2))
    kinds = {}
    for resource in cfn["Resources"].values():
        kinds[resource["Type"]] = kinds.get(resource["Type"], 0) + 1
    print(f"   {len(cfn['Resources'])} resources: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))

    print("2. cfn-lint on the translation")
    matches = cfnlint_api.lint(json.dumps(cfn), config=cfnlint_api.ManualArgs(regions=[REGION]))
    errors = [m for m in matches if m.rule.id.startswith("E")]
    warnings = [m for m in matches if m.rule.id.startswith("W")]
    for match in errors + warnings:
        print(f"   {match.rule.id} {match.message}")
    if errors:
        failures.append(f"cfn-lint: {len(errors)} errors in the translated template")
    print(f"   {len(errors)} errors, {len(warnings)} warnings")

    print("3. references and outputs")
    known = set(cfn["Resources"]) | set(cfn.get("Parameters", {})) | PSEUDO
    for logical, resource in cfn["Resources"].items():
        for name in sorted(names_in(resource, set()) - known):
            failures.append(f"{logical} refers to {name}, which the stack does not define")
    for name, output in cfn.get("Outputs", {}).items():
        for target in sorted(names_in(output, set()) - known):
            failures.append(f"output {name} refers to {target}, which the stack does not define")
    print(f"   {len(cfn.get('Outputs', {}))} outputs; every reference checked")

    print("4. the stack in the emulator's CloudFormation")
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    client = lambda service: session.client(service, endpoint_url=endpoint)  # noqa: E731
    s3 = client("s3")
    s3.create_bucket(Bucket=CODE_BUCKET)
    artefact = io.BytesIO()
    with zipfile.ZipFile(artefact, "w") as archive:
        archive.writestr("bootstrap", "#!/bin/sh\n")
    for logical, resource in cfn["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            key = resource["Properties"]["Code"]["S3Key"]
            s3.put_object(Bucket=CODE_BUCKET, Key=key, Body=artefact.getvalue())
    supported = get_model_map()
    values = create_by_their_api(cfn, client)
    left_out = {}
    for logical, resource in cfn["Resources"].items():
        kind = resource["Type"]
        if kind in supported or kind in BY_THEIR_API:
            continue
        if kind not in NOT_IN_THE_EMULATOR:
            failures.append(f"{logical}: the emulator cannot create {kind}, and no reason says why that is fine")
        left_out[logical] = kind
        values.setdefault(logical, f"not-in-the-emulator-{logical}")
    for_emulator = dict(cfn)
    for_emulator["Resources"] = {
        logical: substitute(resource, values)
        for logical, resource in cfn["Resources"].items()
        if logical not in left_out and resource["Type"] not in BY_THEIR_API
    }
    for_emulator["Outputs"] = substitute(cfn.get("Outputs", {}), values)
    cloudformation = client("cloudformation")
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(for_emulator),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
    print(f"   stack status: {stack['StackStatus']}")
    if stack["StackStatus"] != "CREATE_COMPLETE":
        failures.append(f"the stack ended {stack['StackStatus']}: {stack.get('StackStatusReason')}")
    created = {
        r["LogicalResourceId"]: r
        for r in cloudformation.describe_stack_resources(StackName=STACK)["StackResources"]
    }
    for logical, resource in sorted(cfn["Resources"].items()):
        kind = resource["Type"]
        if logical in created:
            where = created[logical].get("PhysicalResourceId", "")
            print(f"   created          {logical:34} {kind:32} {where}")
        elif kind in BY_THEIR_API:
            print(f"   created by API   {logical:34} {kind:32} {values[logical]}")
        elif logical in left_out:
            print(f"   not created      {logical:34} {kind:32} (the emulator has no such type)")
        else:
            failures.append(f"{logical} ({kind}) was not created")
            print(f"   NOT CREATED      {logical:34} {kind}")
    for kind in sorted(set(left_out.values())):
        count = sum(1 for k in left_out.values() if k == kind)
        print(f"   - {kind} x{count}: {NOT_IN_THE_EMULATOR.get(kind, 'NO REASON GIVEN')}")
    for output in stack.get("Outputs", []):
        value = output.get("OutputValue") or ""
        print(f"   output {output['OutputKey']} = {value}")
        if not value or "{" in value:
            failures.append(f"output {output['OutputKey']} did not resolve: {value!r}")

    print("5. every function's environment names what the stack created")
    lambda_client = client("lambda")
    dynamodb = client("dynamodb")
    cognito = client("cognito-idp")
    checks = {
        "TABLE_NAME": lambda v: dynamodb.describe_table(TableName=v),
        "MEDIA_BUCKET": lambda v: s3.head_bucket(Bucket=v),
        "USER_POOL_ID": lambda v: cognito.describe_user_pool(UserPoolId=v),
    }
    functions = [r for r in created.values() if r["ResourceType"] == "AWS::Lambda::Function"]
    for function in sorted(functions, key=lambda r: r["LogicalResourceId"]):
        config = lambda_client.get_function_configuration(FunctionName=function["PhysicalResourceId"])
        variables = config.get("Environment", {}).get("Variables", {})
        for name, value in sorted(variables.items()):
            check = checks.get(name)
            if check is None:
                continue
            try:
                check(value)
            except Exception as err:  # noqa: BLE001 (reported, then failed)
                failures.append(f"{function['LogicalResourceId']}: {name}={value} names nothing: {err}")
        print(f"   {function['LogicalResourceId']}: {', '.join(sorted(variables))}")

    if failures:
        print("\nthe rehearsal failed:")
        for failure in failures:
            print(f" - {failure}")
        sys.exit(1)
    print("\nthe rehearsal passed")


if __name__ == "__main__":
    main()
