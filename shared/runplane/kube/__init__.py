"""The Kubernetes side shared by the two functions that talk to the cluster: reconcile (creates and
deletes TaskActions) and mirror_status (watches them and writes their status back).

- ``resources``  TaskAction coordinates, Flyte's labels and this project's own (pure, no client)
- ``client``     the TaskAction client over the Kubernetes API, failures classified
- ``eks_auth``   EKS credentials from the function's IAM role (no kubeconfig shipped)

Only those two functions import this package; the API functions never pay for the client.
"""
