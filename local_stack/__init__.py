"""The local stack: the deployed architecture on loopback, with real components.

- ``aws``            moto's server: DynamoDB (the table and its stream) and S3 (the data bucket)
- ``kube``           a real Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager
- ``apigateway``     an HTTP front that turns requests into HTTP API payload-v2 events
- ``stream_poller``  a DynamoDB Streams poller with Lambda's event source mapping semantics
- ``template``       reads routes and the table definition from template.yaml, so the local
                     stack and the deployment cannot drift apart
- ``stack``          wires them together; ``python -m local_stack`` runs it

Tests start the very same pieces through fixtures.
"""
