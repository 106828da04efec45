// flux-apply applies manifests as Flux's kustomize-controller does and waits as it does:
// github.com/fluxcd/pkg/ssa's ResourceManager (server-side apply as the manager
// `kustomize-controller`, a dry-run first, CRDs and Namespaces in a stage of their own,
// kubectl's managers and annotation removed from objects it takes over),
// then kstatus (github.com/fluxcd/cli-utils) until every object is Current, failing as soon
// as one is Failed — as a Kustomization with `wait: true` does.
//
// Usage: flux-apply -timeout 5m FILE|DIR...   (KUBECONFIG names the cluster)
//
// It prints one line per object applied ("Kind/namespace/name action"), then "Current" or
// the error Flux would report; it exits 0 only when every object is Current.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/clusterreader"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/engine"
	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/utils"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

func main() {
	timeout := flag.Duration("timeout", 5*time.Minute, "how long to wait for Current")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: flux-apply [-timeout D] FILE|DIR...")
		os.Exit(2)
	}
	if err := run(flag.Args(), *timeout); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("Current")
}

func run(paths []string, timeout time.Duration) error {
	objects, err := read(paths)
	if err != nil {
		return err
	}
	manager, err := resourceManager()
	if err != nil {
		return err
	}
	// The whole run is bounded, not only the wait: a hung apply must fail, not block.
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	changes, err := manager.ApplyAllStaged(ctx, objects, applyOptions())
	if err != nil {
		return fmt.Errorf("apply failed: %w", err)
	}
	for _, entry := range changes.Entries {
		fmt.Printf("%s %s\n", entry.Subject, entry.Action)
	}
	return manager.WaitForSetWithContext(ctx, changes.ToObjMetadataSet(), ssa.WaitOptions{
		Interval: time.Second,
		Timeout:  timeout,
		FailFast: true,
	})
}

// applyOptions are kustomize-controller's: before applying, it takes over from kubectl by
// removing kubectl's managers and last-applied annotation (a JSON patch of managedFields).
func applyOptions() ssa.ApplyOptions {
	options := ssa.DefaultApplyOptions()
	options.Cleanup = ssa.ApplyCleanupOptions{
		Annotations: []string{
			corev1.LastAppliedConfigAnnotation,
			"kustomize.toolkit.fluxcd.io/checksum",
			"fluxcd.io/sync-checksum",
		},
		Labels: []string{"fluxcd.io/sync-gc-mark"},
		FieldManagers: []ssa.FieldManager{
			{Name: "kubectl", OperationType: metav1.ManagedFieldsOperationApply},
			{Name: "kubectl", OperationType: metav1.ManagedFieldsOperationUpdate},
			{Name: "before-first-apply", OperationType: metav1.ManagedFieldsOperationUpdate},
			{Name: "kustomize-controller", OperationType: metav1.ManagedFieldsOperationUpdate},
		},
		Exclusions: map[string]string{"kustomize.toolkit.fluxcd.io/ssa": "Ignore"},
	}
	return options
}

// resourceManager is the ResourceManager kustomize-controller builds: a controller-runtime
// client and a kstatus poller reading the cluster directly.
func resourceManager() (*ssa.ResourceManager, error) {
	config, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, err
	}
	httpClient, err := rest.HTTPClientFor(config)
	if err != nil {
		return nil, err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(config, httpClient)
	if err != nil {
		return nil, err
	}
	kube, err := client.New(config, client.Options{Mapper: mapper})
	if err != nil {
		return nil, err
	}
	poller := polling.NewStatusPoller(kube, mapper, polling.Options{
		ClusterReaderFactory: engine.ClusterReaderFactoryFunc(clusterreader.NewDirectClusterReader),
	})
	owner := ssa.Owner{Field: "kustomize-controller", Group: "kustomize.toolkit.fluxcd.io"}
	return ssa.NewResourceManager(kube, poller, owner), nil
}

// read parses the YAML files named, and those of the directories named (not recursively).
func read(paths []string) ([]*unstructured.Unstructured, error) {
	var files []string
	for _, path := range paths {
		info, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, path)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(path, "*.yaml"))
		if err != nil {
			return nil, err
		}
		sort.Strings(matches)
		files = append(files, matches...)
	}
	var all bytes.Buffer
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		all.WriteString("\n---\n")
		all.Write(data)
	}
	return utils.ReadObjects(strings.NewReader(all.String()))
}
