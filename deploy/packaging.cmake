# Install rules and the Debian package: `cpack -G DEB` in a build tree makes
# socket-exporter_<version>_<arch>.deb with
#   /usr/bin/socket_exporter                     (exporter/CMakeLists.txt)
#   /etc/socket_exporter/config.yml              config/default.yaml (conffile)
#   /etc/default/socket_exporter                 flags for the unit (conffile)
#   /lib/systemd/system/socket_exporter.service  hardened unit
#   /usr/share/doc/socket-exporter/              README.md, docs/deploy.md
#   /usr/share/doc/socket-exporter/examples/     drop-ins (deploy/systemd/netns.conf)
# Depends is computed by dpkg-shlibdeps from the binary's shared libraries,
# plus procps (/bin/kill, the unit's ExecReload).
# Included from the top-level CMakeLists.txt; tested by
# tests/integration/test_deb_package.py.

# Absolute destinations: Debian's fixed paths, whatever the install prefix.
install(FILES ${PROJECT_SOURCE_DIR}/config/default.yaml
        DESTINATION /etc/socket_exporter RENAME config.yml)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/socket_exporter.default
        DESTINATION /etc/default RENAME socket_exporter)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/socket_exporter.service
        DESTINATION /lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/deploy.md
        DESTINATION share/doc/socket-exporter OPTIONAL)
# Drop-ins for the optional collectors that need capabilities, to copy to
# /etc/systemd/system/socket_exporter.service.d/ (docs/deploy.md).
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/netns.conf
        DESTINATION share/doc/socket-exporter/examples)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME socket-exporter)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "socket_exporter maintainers <maintainers@socket-exporter.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Prometheus exporter for Linux TCP/UDP socket metrics")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
  "Counts TCP and UDP sockets by state, direction, port range and service from\n\
 netlink sock_diag, and predicts ephemeral port exhaustion per destination.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Besides the shared libraries dpkg-shlibdeps finds: procps for /bin/kill,
# the unit's ExecReload (found missing when `systemctl reload` failed with
# 203/EXEC under a real systemd in a minimal Debian, tests/deploy/).
set(CPACK_DEBIAN_PACKAGE_DEPENDS "procps")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles
  ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
  ${PROJECT_SOURCE_DIR}/deploy/debian/prerm
  ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
