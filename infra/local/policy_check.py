"""Check a moto recording against one function's role in infra/template.yaml.

Every AWS call recorded (moto's recorder: /moto-api/recorder/*) while one function's handler
ran must be allowed by the IAM policies its role gets from the template: the SAM template is
expanded with the AWS SAM translator (policy templates such as DynamoDBCrudPolicy become IAM
statements), the intrinsic functions of the policies are resolved for the local stack
(region us-east-1, account 123456789012, stack calsync), and each call's action and resource
ARN is matched against the Allow statements. moto itself does not check resource-level
permissions, so this is the least-privilege test.

Usage: policy_check.py TEMPLATE FUNCTION_LOGICAL_ID RECORDING ACCESS_KEY_ID
Only the requests signed with ACCESS_KEY_ID (the function's own credentials in the test) are
checked, so other parts running at the same time do not count.
Exit 0 when every call is allowed; 1 listing the denied calls (or when none was recorded).
"""
import base64
import fnmatch
import json
import os
import re
import sys
from urllib.parse import urlparse

from cfnlint.decode import decode_str
from samtranslator.translator.transform import transform

REGION, ACCOUNT, STACK, PARTITION = "us-east-1", "123456789012", "calsync", "aws"


class NoManagedPolicies:
    """The template names no managed policies by name (SAM adds the Lambda basic role by ARN)."""

    def load(self):
        return {}


def expand(template_path):
    # The translator reads the region for its pseudo parameters from the AWS environment.
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    os.environ["AWS_REGION"] = REGION
    with open(template_path, encoding="utf-8") as f:
        tpl, errors = decode_str(f.read())
    if errors:
        sys.exit(f"{template_path}: {errors}")
    params = {k: v.get("Default", "") for k, v in tpl.get("Parameters", {}).items()}
    # As `sam package` would: code locations become S3 URIs (the translator wants those).
    tpl = json.loads(json.dumps(tpl))
    tpl.get("Globals", {}).get("Function", {})["CodeUri"] = "s3://calsync-artifacts/code.zip"
    for r in tpl["Resources"].values():
        if r.get("Type") == "AWS::Serverless::Function" and "CodeUri" in r.get("Properties", {}):
            r["Properties"]["CodeUri"] = "s3://calsync-artifacts/code.zip"
    params["JwtIssuer"] = params.get("JwtIssuer") or "https://issuer.example"
    return transform(tpl, params, NoManagedPolicies()), params


class Resolver:
    def __init__(self, cfn, params):
        self.res = cfn["Resources"]
        self.params = params
        self.pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::StackName": STACK,
                       "AWS::Partition": PARTITION, "AWS::URLSuffix": "amazonaws.com"}

    def name(self, logical):
        r = self.res[logical]
        props = r.get("Properties", {})
        for key in ("TableName", "QueueName", "BucketName", "Name"):
            if key in props:
                return self.value(props[key])
        raise ValueError(f"no name for {logical}")

    def ref(self, logical):
        if logical in self.pseudo:
            return self.pseudo[logical]
        if logical in self.params:
            return self.params[logical]
        kind = self.res[logical]["Type"]
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.name(logical)}"
        return self.name(logical)

    def getatt(self, logical, attr):
        kind = self.res[logical]["Type"]
        name = self.name(logical)
        if attr == "QueueName":
            return name
        if attr == "Arn":
            return {
                "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
                "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
                "AWS::Events::EventBus": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}",
                "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            }[kind]
        raise ValueError(f"GetAtt {logical}.{attr}")

    def value(self, v):
        if isinstance(v, str):
            return v
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, dict) and len(v) == 1:
            (k, arg), = v.items()
            if k == "Ref":
                return self.ref(arg)
            if k == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(logical, attr)
            if k == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                out = text
                for var in re.findall(r"\$\{([^}!]+)\}", text):
                    if var in extra:
                        val = self.value(extra[var])
                    elif "." in var:
                        val = self.getatt(*var.split(".", 1))
                    else:
                        val = self.ref(var)
                    out = out.replace("${" + var + "}", val)
                return out
            if k == "Fn::Join":
                sep, parts = arg
                return sep.join(self.value(p) for p in parts)
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        raise ValueError(f"cannot resolve {v!r}")


def statements(cfn, params, function):
    fn = cfn["Resources"][function]
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    r = Resolver(cfn, params)
    out = []
    for p in cfn["Resources"][role]["Properties"].get("Policies", []):
        for st in p["PolicyDocument"]["Statement"]:
            st = r.value(st)
            acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            ress = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            out.append((st["Effect"], [a.lower() for a in acts], ress))
    return out


def secret_arn(secret_id):
    if secret_id.startswith("arn:"):
        return secret_id
    # A name: the ARN ends with "-" and six random characters.
    return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret_id}-AbCdEf"


def calls(recording_path, key_id):
    """(action, resource ARN) of every recorded request signed with `key_id`."""
    with open(recording_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            e = json.loads(line)
            headers = {k.lower(): v for k, v in e["headers"].items()}
            if f"Credential={key_id}/" not in headers.get("authorization", ""):
                continue
            target = headers.get("x-amz-target", "")
            body = e.get("body") or ""
            if e.get("body_encoded"):
                body = base64.b64decode(body).decode("utf-8", "replace")
            data = json.loads(body) if body.strip().startswith("{") else {}
            if not target:
                # S3's REST calls, path-style (/bucket/key) as the local stack addresses them.
                path = urlparse(e["url"]).path.lstrip("/")
                op = {"PUT": "PutObject", "GET": "GetObject", "HEAD": "GetObject", "DELETE": "DeleteObject"}.get(e["method"])
                if "/" in path and op:
                    yield (f"s3:{op}", f"arn:aws:s3:::{path}")
                else:
                    yield (f"unknown:{e['method']} {urlparse(e['url']).path}", "*")
                continue
            prefix, op = target.split(".", 1)
            if prefix.startswith("DynamoDB") and op == "TransactWriteItems":
                # IAM authorizes a transaction's actions item by item, as the single-item
                # operations (no action of its own): https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html
                actions = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
                for item in data.get("TransactItems", []):
                    for kind, req in item.items():
                        yield (f"dynamodb:{actions.get(kind, kind)}", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{req.get('TableName', '')}")
                continue
            if prefix.startswith("DynamoDB"):
                tables = [data["TableName"]] if "TableName" in data else list(data.get("RequestItems", {}))
                for t in tables:
                    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{t}"
                    if data.get("IndexName"):
                        arn += f"/index/{data['IndexName']}"
                    yield (f"dynamodb:{op}", arn)
            elif prefix == "AmazonSQS":
                name = data.get("QueueName") or urlparse(data.get("QueueUrl", "")).path.rsplit("/", 1)[-1]
                yield (f"sqs:{op}", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
            elif prefix == "secretsmanager":
                yield (f"secretsmanager:{op}", secret_arn(data.get("SecretId") or data.get("Name", "")))
            elif prefix == "AWSEvents":
                for entry in data.get("Entries", []):
                    bus = entry.get("EventBusName", "default")
                    yield (f"events:{op}", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}")
            else:
                yield (f"unknown:{target}", "*")


def allowed(sts, action, resource):
    for effect, acts, ress in sts:
        if effect != "Allow":
            continue
        if any(fnmatch.fnmatchcase(action.lower(), a) for a in acts) and any(
            fnmatch.fnmatchcase(resource, r) for r in ress
        ):
            return True
    return False


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    template, function, recording, key_id = sys.argv[1:]
    cfn, params = expand(template)
    sts = statements(cfn, params, function)
    seen, denied = set(), []
    for action, resource in calls(recording, key_id):
        if (action, resource) in seen:
            continue
        seen.add((action, resource))
        if not allowed(sts, action, resource):
            denied.append((action, resource))
    for a, r in sorted(seen):
        print(f"{'DENIED ' if (a, r) in denied else 'allowed'} {a} {r}")
    if not seen:
        print("no AWS calls recorded")
        return 1
    return 1 if denied else 0


if __name__ == "__main__":
    sys.exit(main())
