"""Create the calsync CloudFormation stack from infra/template.yaml in moto.

moto's CloudFormation creates the tables, queues (with DLQ redrive) and secrets of the SAM
template and skips AWS::Serverless::* resources with a warning; the functions run locally
through the runner instead. Usage: create_stack.py ENDPOINT TEMPLATE
"""
import sys
import time

import boto3

endpoint, template = sys.argv[1], sys.argv[2]
cfn = boto3.client(
    "cloudformation",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)
with open(template, encoding="utf-8") as f:
    body = f.read()
cfn.create_stack(StackName="calsync", TemplateBody=body, Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"])
deadline = time.time() + 60
while True:
    status = cfn.describe_stacks(StackName="calsync")["Stacks"][0]["StackStatus"]
    if status.endswith("_COMPLETE") or status.endswith("_FAILED"):
        break
    if time.time() > deadline:
        sys.exit(f"stack creation timed out in state {status}")
    time.sleep(0.2)
if status != "CREATE_COMPLETE":
    events = cfn.describe_stack_events(StackName="calsync")["StackEvents"]
    for e in events[:10]:
        print(e.get("LogicalResourceId"), e.get("ResourceStatus"), e.get("ResourceStatusReason"))
    sys.exit(f"stack creation ended in {status}")
resources = cfn.list_stack_resources(StackName="calsync")["StackResourceSummaries"]
print(f"stack calsync: {status}, {len(resources)} resources")

# Local only: the application's notifications (EventBridge bus calsync-bus) also land in an
# SQS queue, which the tests read and `make serve` prints.
session = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
sqs = boto3.client("sqs", **session)
events = boto3.client("events", **session)
queue_url = sqs.create_queue(QueueName="calsync-notifications")["QueueUrl"]
queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
events.put_rule(Name="calsync-notifications-tap", EventBusName="calsync-bus", EventPattern='{"source": ["calsync"]}')
events.put_targets(Rule="calsync-notifications-tap", EventBusName="calsync-bus", Targets=[{"Id": "queue", "Arn": queue_arn}])
print("notifications: bus calsync-bus -> queue calsync-notifications")
