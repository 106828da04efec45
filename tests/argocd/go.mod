module github.com/thinkheads/phoenix/tests/argocd

go 1.26

require github.com/yuin/gopher-lua v1.1.2
