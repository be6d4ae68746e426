# Build targets for `sam build` (BuildMethod: makefile). Each ships precompiled bytecode
# (unchecked-hash, so zip extraction times do not invalidate it): `sam build` ships no .pyc and
# Lambda's /var/task is read-only, so without this every cold start compiles every import.
PYTHON ?= python3.13
PIP_TARGET = --only-binary=:all: --platform manylinux2014_aarch64 --implementation cp --python-version 3.13
# Exactly the locks' packages, each checked against its hash (scripts/lock-lambda makes the locks
# from shared/requirements.txt and functions/reconcile/requirements.txt, for 3.13 and arm64).
PIP_LOCKED = --no-deps --require-hashes

define precompile
	$(PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash "$(1)"
endef

define copy_function
	mkdir -p "$(ARTIFACTS_DIR)/functions"
	cp functions/__init__.py "$(ARTIFACTS_DIR)/functions/"
	cp -r functions/$(1) "$(ARTIFACTS_DIR)/functions/"
	find "$(ARTIFACTS_DIR)" -name '__pycache__' -prune -exec rm -rf {} +
endef

# The Kubernetes client for the two functions that talk to the cluster, trimmed to what their code
# path imports (runplane.kube: CustomObjectsApi, ApiClient/Configuration, watch; on AWS never
# kubernetes.config: no kubeconfig is shipped, runplane.kube.eks_auth builds the client). What
# kubernetes 37 brings and that path never imports: its asyncio client (kubernetes/aio and aiohttp
# with its dependencies), kubeconfig loading (config: requests, requests-oauthlib, oauthlib,
# certifi, ...), dynamic/stream/leaderelection/informer (websocket-client), every generated API but
# CustomObjectsApi (kubernetes.client and its api package import them lazily), and tzdata. The
# package's __init__ imports all its subpackages, so its `from . import` lines go; kubernetes.utils
# stays (client/rest.py imports its retry and keepalive helpers by their module paths), but its
# __init__ is emptied (KUBERNETES_EMPTIED_INITS): it imports create_from_yaml, and with it yaml,
# for nothing on this path (~15 ms of both functions' cold start, `python -X importtime`).
# Verified by running both functions' imports and every TaskActionClient call from the trimmed tree
# against a real API server (docs/architecture.md, "Deploying, in short"); 158 MB unzipped before, 48 MB after.
KUBERNETES_UNUSED = kubernetes/aio kubernetes/config kubernetes/dynamic kubernetes/stream \
	kubernetes/leaderelection kubernetes/informer \
	aiohttp aiohttp_retry aiohappyeyeballs aiosignal attr attrs frozenlist multidict propcache yarl \
	requests requests_oauthlib oauthlib charset_normalizer idna certifi websocket tzdata bin
KUBERNETES_EMPTIED_INITS = kubernetes/utils/__init__.py
KUBERNETES_UNUSED_DISTS = aiohttp aiohttp_retry aiohappyeyeballs aiosignal attrs frozenlist multidict propcache \
	yarl requests requests_oauthlib oauthlib charset_normalizer idna certifi websocket_client tzdata

define install_kubernetes
	$(PYTHON) -m pip install --quiet $(PIP_TARGET) $(PIP_LOCKED) --target "$(ARTIFACTS_DIR)" -r requirements/kubernetes.lock
	cd "$(ARTIFACTS_DIR)" && rm -rf $(KUBERNETES_UNUSED) $(addsuffix -*.dist-info,$(KUBERNETES_UNUSED_DISTS))
	$(PYTHON) -c "import pathlib, re, sys; p = pathlib.Path(sys.argv[1]); p.write_text(re.sub(r'(?m)^from \. import .*\n', '', p.read_text()))" "$(ARTIFACTS_DIR)/kubernetes/__init__.py"
	cd "$(ARTIFACTS_DIR)" && for f in $(KUBERNETES_EMPTIED_INITS); do : > "$$f"; done
	find "$(ARTIFACTS_DIR)/kubernetes/client/api" -maxdepth 1 -name '*.py' ! -name '__init__.py' ! -name 'custom_objects_api.py' -delete
endef

build-SharedLayer:
	$(PYTHON) -m pip install --quiet $(PIP_TARGET) $(PIP_LOCKED) --target "$(ARTIFACTS_DIR)/python" -r requirements/layer.lock
	cp -r shared/runplane "$(ARTIFACTS_DIR)/python/runplane"
	$(call precompile,$(ARTIFACTS_DIR)/python)

build-CreateRunFunction:
	$(call copy_function,create_run)
	$(call precompile,$(ARTIFACTS_DIR))

build-UpdateActionFunction:
	$(call copy_function,update_action)
	$(call precompile,$(ARTIFACTS_DIR))

build-ReadRunsFunction:
	$(call copy_function,read_runs)
	$(call precompile,$(ARTIFACTS_DIR))

build-ReadRunsStreamFunction: # read_runs again; the adapter starts functions/read_runs/stream.sh
	$(call copy_function,read_runs)
	chmod +x "$(ARTIFACTS_DIR)/functions/read_runs/stream.sh"
	$(call precompile,$(ARTIFACTS_DIR))

build-TaskRegistryFunction:
	$(call copy_function,task_registry)
	$(call precompile,$(ARTIFACTS_DIR))

build-DataProxyFunction:
	$(call copy_function,data_proxy)
	$(call precompile,$(ARTIFACTS_DIR))

build-CacheServiceFunction:
	$(call copy_function,cache_service)
	$(call precompile,$(ARTIFACTS_DIR))

build-AuthMetadataFunction:
	$(call copy_function,auth_metadata)
	$(call precompile,$(ARTIFACTS_DIR))

build-ConsoleFunction: # the page and its static files (functions/console/static) ship with it
	$(call copy_function,console)
	$(call precompile,$(ARTIFACTS_DIR))

build-ReconcileFunction:
	$(call copy_function,reconcile)
	$(call install_kubernetes,reconcile)
	$(call precompile,$(ARTIFACTS_DIR))

build-MirrorStatusFunction:
	$(call copy_function,mirror_status)
	$(call install_kubernetes,mirror_status)
	$(call precompile,$(ARTIFACTS_DIR))

.PHONY: build-MirrorStatusFunction build-SharedLayer build-CreateRunFunction build-UpdateActionFunction build-ReadRunsFunction build-TaskRegistryFunction build-DataProxyFunction build-AuthMetadataFunction build-ConsoleFunction build-ReconcileFunction
