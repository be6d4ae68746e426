"""reconcile: how an action becomes a TaskAction. DynamoDB Streams -> Kubernetes."""
