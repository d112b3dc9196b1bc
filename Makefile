# Build and install ksmctl and ksmtuned on any distribution (the Debian
# package is made by scripts/build-deb instead):
#
#   make                                   # release build, man pages, completions
#   sudo make install [PREFIX=/usr/local] [DESTDIR=]
#   sudo make uninstall [same variables]
#
# Then, with systemd: systemctl daemon-reload && systemctl enable --now ksmtuned
# (install enables nothing). The programs read /etc/ksmtuned.conf and
# /etc/sysconfig/ksm or /etc/default/ksm whatever PREFIX is, so SYSCONFDIR
# only moves where the examples go (e.g. into a staging DESTDIR).
# Existing configuration files are never overwritten; uninstall removes
# them only when they are unchanged.

PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR ?= $(PREFIX)/sbin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/ksmtuned
SYSCONFDIR ?= /etc
# systemd looks in /usr/local/lib/systemd/system too; distributions that
# keep units in /lib/systemd/system (Debian 12) can say so here.
UNITDIR ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d

CARGO ?= cargo
# Where cargo puts the release binaries ($CARGO_TARGET_DIR if set).
RELEASE := $(or $(CARGO_TARGET_DIR),target)/release
ASSETS := target/assets
DASHBOARD := contrib/grafana/ksm-dashboard.json
RULES := contrib/prometheus/ksm-rules.yml contrib/prometheus/ksm-rules.test.yml

# The units and the libvirt hook name /usr/sbin; point them at SBINDIR.
SUBST := sed -e 's|/usr/sbin/|$(SBINDIR)/|g'

.PHONY: all build docs install uninstall clean-assets

all: build docs

# Cargo knows what is up to date; these are cheap when nothing changed.
build:
	$(CARGO) build --release --locked --bins

# Man pages and completions from the CLI definitions, into $(ASSETS).
docs:
	$(CARGO) run --locked --example gen-docs -- $(ASSETS)

# install-conf SOURCE DEST: install unless DEST exists (a conffile).
define install-conf
	@if [ -e '$(DESTDIR)$(2)' ]; then \
		echo "keeping existing $(DESTDIR)$(2)"; \
	else \
		install -D -m 644 '$(1)' '$(DESTDIR)$(2)' && echo "installed $(DESTDIR)$(2)"; \
	fi
endef

install: all
	install -D -m 755 $(RELEASE)/ksmctl '$(DESTDIR)$(SBINDIR)/ksmctl'
	install -D -m 755 $(RELEASE)/ksmtuned '$(DESTDIR)$(SBINDIR)/ksmtuned'
	install -d '$(DESTDIR)$(UNITDIR)'
	$(SUBST) units/ksm.service > '$(DESTDIR)$(UNITDIR)/ksm.service'
	$(SUBST) units/ksmtuned.service > '$(DESTDIR)$(UNITDIR)/ksmtuned.service'
	chmod 644 '$(DESTDIR)$(UNITDIR)/ksm.service' '$(DESTDIR)$(UNITDIR)/ksmtuned.service'
	$(call install-conf,etc/ksmtuned.conf,$(SYSCONFDIR)/ksmtuned.conf)
	$(call install-conf,etc/sysconfig/ksm,$(SYSCONFDIR)/sysconfig/ksm)
	$(call install-conf,etc/default/ksm,$(SYSCONFDIR)/default/ksm)
	$(call install-conf,etc/logrotate.d/ksmtuned,$(SYSCONFDIR)/logrotate.d/ksmtuned)
	install -d '$(DESTDIR)$(SYSCONFDIR)/libvirt/hooks/qemu.d'
	$(SUBST) contrib/libvirt/hooks/qemu.d/ksmtuned > '$(DESTDIR)$(SYSCONFDIR)/libvirt/hooks/qemu.d/ksmtuned'
	chmod 755 '$(DESTDIR)$(SYSCONFDIR)/libvirt/hooks/qemu.d/ksmtuned'
	install -D -m 644 $(ASSETS)/man/ksmctl.8 '$(DESTDIR)$(MANDIR)/man8/ksmctl.8'
	install -D -m 644 $(ASSETS)/man/ksmtuned.8 '$(DESTDIR)$(MANDIR)/man8/ksmtuned.8'
	install -D -m 644 man/ksmtuned.conf.5 '$(DESTDIR)$(MANDIR)/man5/ksmtuned.conf.5'
	for p in ksmctl ksmtuned; do \
		install -D -m 644 $(ASSETS)/completions/$$p.bash "$(DESTDIR)$(BASHCOMPDIR)/$$p" && \
		install -D -m 644 $(ASSETS)/completions/_$$p "$(DESTDIR)$(ZSHCOMPDIR)/_$$p" && \
		install -D -m 644 $(ASSETS)/completions/$$p.fish "$(DESTDIR)$(FISHCOMPDIR)/$$p.fish" || exit 1; \
	done
	install -D -m 644 README.md '$(DESTDIR)$(DOCDIR)/README.md'
	for f in docs/*.md docs/ksm-bench.svg; do \
		install -D -m 644 $$f "$(DESTDIR)$(DOCDIR)/$${f##*/}" || exit 1; \
	done
	install -D -m 644 docs/schema/ksmctl.schema.json '$(DESTDIR)$(DOCDIR)/schema/ksmctl.schema.json'
	if [ -f $(DASHBOARD) ]; then \
		install -D -m 644 $(DASHBOARD) '$(DESTDIR)$(DOCDIR)/grafana/ksm-dashboard.json'; \
	fi
	for f in $(RULES); do \
		install -D -m 644 $$f "$(DESTDIR)$(DOCDIR)/prometheus/$${f##*/}" || exit 1; \
	done

# remove-conf SOURCE DEST: remove DEST if it is what install put there.
define remove-conf
	@if [ -e '$(DESTDIR)$(2)' ] && ! cmp -s '$(1)' '$(DESTDIR)$(2)'; then \
		echo "keeping changed $(DESTDIR)$(2)"; \
	else \
		rm -f '$(DESTDIR)$(2)'; \
	fi
endef

uninstall:
	rm -f '$(DESTDIR)$(SBINDIR)/ksmctl' '$(DESTDIR)$(SBINDIR)/ksmtuned'
	rm -f '$(DESTDIR)$(UNITDIR)/ksm.service' '$(DESTDIR)$(UNITDIR)/ksmtuned.service'
	$(call remove-conf,etc/ksmtuned.conf,$(SYSCONFDIR)/ksmtuned.conf)
	$(call remove-conf,etc/sysconfig/ksm,$(SYSCONFDIR)/sysconfig/ksm)
	$(call remove-conf,etc/default/ksm,$(SYSCONFDIR)/default/ksm)
	$(call remove-conf,etc/logrotate.d/ksmtuned,$(SYSCONFDIR)/logrotate.d/ksmtuned)
	@hook='$(DESTDIR)$(SYSCONFDIR)/libvirt/hooks/qemu.d/ksmtuned'; \
	if [ -e "$$hook" ] && ! $(SUBST) contrib/libvirt/hooks/qemu.d/ksmtuned | cmp -s - "$$hook"; then \
		echo "keeping changed $$hook"; \
	else \
		rm -f "$$hook"; \
	fi
	rm -f '$(DESTDIR)$(MANDIR)/man8/ksmctl.8' '$(DESTDIR)$(MANDIR)/man8/ksmtuned.8' \
		'$(DESTDIR)$(MANDIR)/man5/ksmtuned.conf.5'
	for p in ksmctl ksmtuned; do \
		rm -f "$(DESTDIR)$(BASHCOMPDIR)/$$p" "$(DESTDIR)$(ZSHCOMPDIR)/_$$p" \
			"$(DESTDIR)$(FISHCOMPDIR)/$$p.fish"; \
	done
	rm -f '$(DESTDIR)$(DOCDIR)/README.md' '$(DESTDIR)$(DOCDIR)/grafana/ksm-dashboard.json'
	for f in $(RULES); do rm -f "$(DESTDIR)$(DOCDIR)/prometheus/$${f##*/}"; done
	for f in docs/*.md docs/ksm-bench.svg; do rm -f "$(DESTDIR)$(DOCDIR)/$${f##*/}"; done
	rm -f '$(DESTDIR)$(DOCDIR)/schema/ksmctl.schema.json'
	-rmdir '$(DESTDIR)$(DOCDIR)/grafana' '$(DESTDIR)$(DOCDIR)/prometheus' '$(DESTDIR)$(DOCDIR)/schema' '$(DESTDIR)$(DOCDIR)' 2>/dev/null

clean-assets:
	rm -rf $(ASSETS)
