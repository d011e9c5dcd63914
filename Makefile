# Thin aliases for ./tasks.sh (which needs no make).
.PHONY: reproduce test
reproduce:
	./tasks.sh reproduce
test:
	./tasks.sh test
