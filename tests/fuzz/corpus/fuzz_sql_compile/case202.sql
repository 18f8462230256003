SET @a = 1 SET @b = 2
SELECT @a AS a FROM 't'